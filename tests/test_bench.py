"""The benchmarks run end to end and print their figures (tiny sizes; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssgan.bench import main as bench_main
from ssgan.bench_config import ServeBenchConfig, TrainBenchConfig
from ssgan.benchmarks.command import BenchOptions, print_results, run_benchmark, with_first_method
from ssgan.command_checks import chosen_methods
from ssgan.errors import UserError

TINY = [
    *("model.d_size_mult=4", "model.g_size_mult=4", "model.z_size=8", "data.batch_size=16"),
    *("data.train_size=400", "data.val_size=50", "data.test_size=50", "data.num_labeled=20"),
]


def _bench(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    """``python -m ssgan.bench args`` in this process."""
    monkeypatch.setattr(sys, "argv", ["ssgan/bench.py", *args])
    bench_main()


def _run(monkeypatch, capsys, tmp_path: Path, *args: str) -> dict:
    _bench(monkeypatch, *args, *TINY, f"data.root={tmp_path}", "bench.json=true")
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


@pytest.mark.integration
def test_train_benchmark_prints_ratios_and_flops_at_both_widths(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    figures = _run(monkeypatch, capsys, tmp_path, "bench.steps=3", "bench.warmup=1",
                   "bench.rounds=1")  # fmt: skip
    assert figures["matmul_peak_flops_per_sec"] > 0 and figures["machine"]["cores"] >= 1
    for width in ("default", "smoke"):
        for key in ("full_loop_images_per_sec", "bare_step_images_per_sec",
                    "loop_to_bare_ratio", "flops_per_training_image", "step_share_of_peak",
                    "input_pipeline_batches_per_sec"):  # fmt: skip
            assert figures[width][key] > 0, (width, key)
        for key in ("logging_overhead", "host_cost_per_step_us"):
            assert isinstance(figures[width][key], float), (width, key)
        for key in ("bare_step_kernel_share", "full_loop_kernel_share"):
            assert 0.0 <= figures[width][key] < 1.0, (width, key)
    assert figures["machine"]["allocator"].startswith("glibc malloc, mmap threshold 32 MiB")
    assert figures["smoke"]["batch_size"] == 32 and figures["default"]["batch_size"] == 16
    assert figures["smoke"]["timed_steps_per_round"] == 15  # smoke widths time 5x the steps
    # As printed without bench.json: a column per width, a row per figure.
    print_results({k: v for k, v in figures.items() if k != "machine"}, as_json=False)
    table = capsys.readouterr().out.splitlines()
    assert next(line for line in table if line.startswith("widths")).split()[1:] == [
        "default", "smoke"
    ]  # fmt: skip
    for row in ("host_cost_per_step_us", "loop_to_bare_ratio", "matmul_peak_flops_per_sec"):
        assert any(line.split()[:1] == [row] for line in table), row


@pytest.mark.unit
def test_train_benchmark_refuses_a_bad_width_before_any_work(monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _bench(monkeypatch, "bench.widths=[huge]")
    assert exit_info.value.code == 2
    assert "error: bench.widths=[huge]: allowed a list of default, smoke" in capsys.readouterr().err


@pytest.mark.integration
def test_train_benchmark_times_several_methods_side_by_side(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    # At the tiny default widths (TINY): the methods side by side are the point here, the
    # smoke widths are timed by the test above.
    figures = _run(monkeypatch, capsys, tmp_path, "bench.methods=[supervised,fixmatch]",
                   "bench.widths=[default]", "bench.steps=1", "bench.warmup=1",
                   "bench.rounds=1")  # fmt: skip
    tiny = figures["default"]
    assert list(tiny) == ["supervised", "fixmatch"]
    for name, method in tiny.items():
        assert method["method"] == name and method["step_share_of_peak"] > 0
        for key in ("full_loop_images_per_sec", "bare_step_images_per_sec", "flops_per_step",
                    "loop_to_bare_ratio", "input_pipeline_to_step_ratio"):  # fmt: skip
            assert method[key] > 0, (name, key)
    # FixMatch reads mu x batch unlabelled images a step and times its augmentation.
    assert tiny["fixmatch"]["unlabelled_batch_size"] == 7 * tiny["fixmatch"]["batch_size"]
    assert tiny["fixmatch"]["augmentation_share"] > 0
    assert tiny["supervised"]["augmentation_share"] is None
    assert tiny["fixmatch"]["flops_per_step"] > tiny["supervised"]["flops_per_step"]
    print_results({k: v for k, v in figures.items() if k != "machine"}, as_json=False)
    table = capsys.readouterr().out.splitlines()
    header = next(line for line in table if line.startswith("default widths, methods"))
    assert header.split()[-2:] == ["supervised", "fixmatch"]
    for row in ("augmentation_share", "host_cost_per_step_us", "loop_to_bare_ratio"):
        assert any(line.split()[:1] == [row] for line in table), row


@pytest.mark.unit
def test_an_unknown_method_is_refused_in_one_line_before_any_work(
    monkeypatch, capsys, tmp_path
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _bench(monkeypatch, "bench.methods=[fixmatch,nope]", f"data.root={tmp_path}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: bench.methods=[fixmatch,nope]: unknown method nope; allowed:")
    assert list(tmp_path.iterdir()) == []  # no data generated
    # A method.<key> override goes to every method listed: one that lacks it refuses it.
    with pytest.raises(SystemExit) as exit_info:
        _bench(monkeypatch, "bench.methods=[fixmatch,supervised]", "method.threshold=0.9",
               f"data.root={tmp_path}")  # fmt: skip
    assert exit_info.value.code == 2 and list(tmp_path.iterdir()) == []
    assert "unknown key 'method.threshold'" in capsys.readouterr().err


@pytest.mark.unit
def test_methods_are_chosen_by_name_or_all() -> None:
    assert chosen_methods(TrainBenchConfig()) is None  # the config's method
    assert chosen_methods(TrainBenchConfig(methods=["all"])) == [
        "supervised", "ssgan", "badgan", "mean_teacher", "fixmatch",
    ]  # fmt: skip
    assert chosen_methods(TrainBenchConfig(methods=["fixmatch", "supervised", "fixmatch"])) == [
        "fixmatch", "supervised",
    ]  # fmt: skip
    # The config Hydra composes is the first listed method's, so a key they share composes.
    listed = ["--cfg", "job", "bench.methods=[fixmatch,mean_teacher]", "method.translate=2"]
    assert with_first_method(listed) == [*listed[:2], "method=fixmatch", *listed[2:]]
    every = ["bench.methods=[all]"]
    assert with_first_method(every) == ["method=supervised", *every]
    assert with_first_method(["method.translate=2"]) == ["method.translate=2"]
    with pytest.raises(UserError, match="method=ssgan: bench.methods picks the methods"):
        with_first_method(["bench.methods=[fixmatch]", "method=ssgan"])


@pytest.mark.integration
def test_serve_benchmark_prints_latency_and_throughput(monkeypatch, capsys, tmp_path) -> None:
    figures = _run(monkeypatch, capsys, tmp_path, "bench=serve", "bench.requests=5")
    assert figures["latency_ms_p99"] >= figures["latency_ms_p50"] > 0
    for size in (1, 8, 64, 256):
        assert figures[f"signature_images_per_sec_batch{size}"] > 0
    assert figures["signature_to_network_ratio_batch64"] == pytest.approx(
        figures["signature_images_per_sec_batch64"] / figures["network_images_per_sec_batch64"]
    )


@pytest.mark.e2e
def test_dropout_mask_timing_prints_each_variant() -> None:
    script = Path(__file__).parents[1] / "experiments" / "step_timing" / "dropout_mask.py"
    done = subprocess.run(
        [sys.executable, str(script), "--batch", "4", "--steps", "1", "--rounds", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("  ")[0]: line.split() for line in done.stdout.splitlines()}
    for variant in ("uniform (default)", "byte", "no dropout (bound)"):
        assert float(rows[variant][-1]) > 0 and rows[variant][-2].endswith("%"), done.stdout
    assert done.stderr == ""  # no TensorFlow start-up lines


@pytest.mark.unit
def test_options_keep_the_training_overrides_and_leave_the_bench_keys_out() -> None:
    job = ("bench=train", "train.precision=bf16", "bench.steps=5", "model.z_size=8",
           "tracking.uri=sqlite:///elsewhere.db", "bench.json=true")  # fmt: skip
    bench = TrainBenchConfig(steps=5, json=True)
    assert BenchOptions.from_job(bench, job) == BenchOptions(
        bench, ("train.precision=bf16", "model.z_size=8", "tracking.uri=sqlite:///elsewhere.db")
    )
    # Beside bench.methods, the method= that with_first_method added is not passed on.
    listed = TrainBenchConfig(methods=["fixmatch", "mean_teacher"])
    job = ("bench.methods=[fixmatch,mean_teacher]", "method.translate=2", "method=fixmatch")
    assert BenchOptions.from_job(listed, job).overrides == ("method.translate=2",)
    assert BenchOptions.from_job(ServeBenchConfig(), ("bench=serve",)).overrides == ()


@pytest.mark.unit
def test_bad_widths_are_refused_before_any_benchmark() -> None:
    with pytest.raises(UserError, match=r"bench.widths=\[wide\]"):
        run_benchmark(BenchOptions(TrainBenchConfig(widths=["wide"])))
