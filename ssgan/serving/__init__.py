"""Serving: the SavedModel and its contract, the verification set, the versioned serving
folder and its labels, promotion, the hand-over bundle and the clients that score images.
Nothing here reaches the training loop."""
