"""Sweeps: grid sweeps' parent runs, search spaces, Optuna studies, and the reports that
turn a sweep's runs into tables and plots."""
