"""The repository's scripts, run with fake commands: the test command's shell helpers
(scripts/deadline.sh, scripts/apt.sh), the aarch64 toolchain install (scripts/cross-debian.sh), the
side-by-side benchmark's call of the runtime and Whisper on a dataset's recorded words."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEADLINE_SH = REPO / "scripts" / "deadline.sh"
CROSS_SH = REPO / "scripts" / "cross-debian.sh"

# A command that counts its runs in a file, hangs on the runs listed in HANG_ON, then exits with
# EXIT_CODE.
FAKE = """
n=$(( $(cat "$COUNT" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$COUNT"
echo "run $n"
case " $HANG_ON " in *" $n "*) sleep 600 & wait ;; esac
exit "$EXIT_CODE"
"""


def rerun(tmp_path: Path, hang_on: str, exit_code: int) -> tuple[int, str, int, Path]:
    count = tmp_path / "count"
    log = tmp_path / "run.log"
    env = dict(os.environ, COUNT=str(count), HANG_ON=hang_on, EXIT_CODE=str(exit_code))
    script = f'. "{DEADLINE_SH}"; rerun_if_hung 2 "{log}" bash -c \'{FAKE}\''
    out = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    return out.returncode, out.stdout, int(count.read_text()), log


def test_a_hung_qemu_run_is_stopped_at_its_deadline_and_run_once_more(tmp_path):
    rc, stdout, runs, log = rerun(tmp_path, hang_on="1", exit_code=0)
    assert rc == 0
    assert runs == 2
    assert "no result after 2 s: the run hung and was stopped" in stdout
    assert "attempt 1 of 2 hung" in stdout
    assert log.read_text().strip() == "run 2"
    assert (tmp_path / "run.log.hung-1").read_text().strip() == "run 1"


def test_a_run_that_hangs_twice_fails_with_the_timeout_status(tmp_path):
    rc, stdout, runs, _ = rerun(tmp_path, hang_on="1 2", exit_code=0)
    assert rc == 124
    assert runs == 2
    assert "attempt 2 of 2 hung" in stdout


def test_a_failing_run_is_never_rerun(tmp_path):
    rc, stdout, runs, _ = rerun(tmp_path, hang_on="", exit_code=3)
    assert rc == 3
    assert runs == 1
    assert "no result" not in stdout


def test_a_native_test_run_that_hangs_says_so_instead_of_a_bare_timeout_status(tmp_path):
    count, log = tmp_path / "count", tmp_path / "native.log"
    env = dict(os.environ, COUNT=str(count), HANG_ON="1", EXIT_CODE="0")
    script = f'. "{DEADLINE_SH}"; run_by_deadline 2 "{log}" bash -c \'{FAKE}\''
    out = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 124
    assert int(count.read_text()) == 1  # never rerun
    assert (
        f"no result after 2 s: the run hung and was stopped (the last test it started is in {log})"
        in out.stdout
    )


def test_side_by_side_benchmarks_our_binary_on_the_model_it_was_given(tmp_path):
    """It ran `visualbyte bench` on the default model whatever `--model` said, so a comparison of
    another model set our default's timings beside onnxruntime's timings of the other one."""
    spec = importlib.util.spec_from_file_location(
        "bench_side_by_side", REPO / "scripts" / "bench_side_by_side.py"
    )
    bsb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bsb)
    argv = tmp_path / "argv"
    fake = tmp_path / "visualbyte"
    fake.write_text(
        f'#!/bin/bash\nprintf "%s\\n" "$@" > "{argv}"\n'
        + "echo '"
        + json.dumps({"stages": [{"name": "embed", "median_ms": 1.0}]})
        + "'\n"
    )
    fake.chmod(0o755)
    model, index = tmp_path / "other.onnx", tmp_path / "other.vbi"
    report = bsb.ours(fake, model, index, threads=2, runs=5, search=False)
    args = argv.read_text().split("\n")
    assert args[args.index("--model") + 1] == str(model)
    assert args[args.index("--index") + 1] == str(index)
    assert args[args.index("--threads") + 1] == "2"
    assert report["by_name"]["embed"]["median_ms"] == 1.0
    assert "--ops" in args
    bsb.ours(fake, model, index, threads=2, runs=5, search=False, ops=False)
    assert "--ops" not in argv.read_text().split("\n")


def test_side_by_side_reports_the_median_round_of_alternating_rounds():
    """One round of each side in turn can favour either on a VM whose speed drifts; the reported
    round is the one with the median ratio, not the first."""
    spec = importlib.util.spec_from_file_location(
        "bench_side_by_side", REPO / "scripts" / "bench_side_by_side.py"
    )
    bsb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bsb)

    def ms(v):
        return {"median_ms": v}

    pairs = [(ms(1.3), ms(1.0)), (ms(1.8), ms(2.0)), (ms(2.2), ms(2.0))]
    mid, ratios = bsb.median_round(pairs)
    assert mid == 2
    assert [round(r, 2) for r in ratios] == [1.3, 0.9, 1.1]
    assert bsb.median_round(pairs[:2])[0] == 1
    assert bsb.median_round(pairs[:1])[0] == 0


# A Debian machine on which nothing is installed until the fake apt-get runs: dpkg-query fails for
# every package (as the real one does for an unknown package) until then, and reports each one
# installed after.
FAKE_DEBIAN = {
    "dpkg-query": """#!/bin/sh
[ -f "$STATE/installed" ] || exit 1
echo "installed 1.0"
""",
    "apt-get": """#!/bin/sh
echo "apt-get $*" >> "$STATE/calls"
case " $* " in *" install "*) touch "$STATE/installed" ;; esac
exit 0
""",
    "dpkg": """#!/bin/sh
echo "dpkg $*" >> "$STATE/calls"
""",
    "mount": "#!/bin/sh\nexit 0\n",
    "sh": '#!/bin/bash\necho "sh $*" >> "$STATE/calls"\n',
}


def test_the_aarch64_install_step_installs_the_toolchain_on_a_machine_without_rustc_web(tmp_path):
    """On a brand-new machine the install step ended, silently and with an error, at
    `host=$(installed_version rustc-web)`: dpkg-query fails for a package that is not installed,
    and the script runs under `set -e -o pipefail`. CI on a fresh machine failed in its first
    stage."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in FAKE_DEBIAN.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        STATE=str(tmp_path),
        VISUALBYTE_CACHE=str(tmp_path / "cache"),
    )
    out = subprocess.run(
        ["bash", str(CROSS_SH), "aarch64", "install"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    calls = (tmp_path / "calls").read_text()
    assert "dpkg --add-architecture arm64" in calls
    install = next(line for line in calls.splitlines() if " install " in line)
    for package in ("rustc-web", "libstd-rust-web-dev:arm64", "gcc-aarch64-linux-gnu", "qemu-user"):
        assert package in install.split(), install


def test_whisper_on_the_human_split_counts_a_transcript_that_names_the_class_per_speaker(
    tmp_path, capsys
):
    spec = importlib.util.spec_from_file_location(
        "whisper_anchor", REPO / "scripts" / "whisper_anchor.py"
    )
    wa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wa)
    rows = [
        {"class": "tiger", "file": "t.ogg", "speaker": "tuxpaint"},
        {"class": "bicycle", "file": "b.ogg", "speaker": "ktuberling"},
        {"class": "elephant", "file": "e.ogg", "speaker": "tuxpaint"},
    ]
    (tmp_path / "human_audio_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    heard = {"t.ogg": " A tiger.", "b.ogg": " Bike!", "e.ogg": " An elephants"}

    class Segment:
        def __init__(self, text):
            self.text = text

    class FakeWhisper:
        def transcribe(self, path, language, beam_size):
            return [Segment(heard[path])], None

    wa.human_split(FakeWhisper(), tmp_path)
    out = capsys.readouterr().out
    assert "| tuxpaint | 2 | 100.0% (2) |" in out
    assert "| ktuberling | 1 | 100.0% (1) |" in out  # "bike" is one of bicycle's names
    assert "| all | 3 | 100.0% (3) |" in out
    heard["e.ogg"] = " An elegant"
    wa.human_split(FakeWhisper(), tmp_path)
    assert "| tuxpaint | 2 | 50.0% (1) |" in capsys.readouterr().out


def test_a_package_installed_for_two_architectures_is_not_installed_again(tmp_path):
    """dpkg-query prints one status for each architecture a package is installed for; read as one
    word ("installedinstalled"), libasound2-dev (amd64 and, for the aarch64 stage, arm64) looked
    missing, and every test run updated apt and installed it again."""
    status = {
        "libasound2-dev": "installed amd64\ninstalled arm64\n",
        "fonts-nanum": "installed all\n",
        "only-arm64": "installed arm64\n",
        "removed": "config-files amd64\n",
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg").write_text("#!/bin/bash\necho amd64\n")
    cases = "".join(f"    {name}) printf '{text}' ;;\n" for name, text in status.items())
    (bin_dir / "dpkg-query").write_text(
        '#!/bin/bash\nfor p in "$@"; do :; done\ncase "$p" in\n'
        + cases
        + '    *) echo "dpkg-query: no packages found matching $p" >&2; exit 1 ;;\nesac\n'
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    apt_sh = REPO / "scripts" / "apt.sh"
    script = f'set -euo pipefail; . "{apt_sh}"; apt_missing {" ".join(status)} absent'
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["only-arm64", "removed", "absent"]
