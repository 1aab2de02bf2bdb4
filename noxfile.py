"""Set-up and checks in fresh virtual environments: `nox -s lint`, `nox -s tests`, `nox -s slow`,
`nox -s browser`, `nox -s cluster`, `nox -s demo`.

Each session installs torch first, pinned: on a machine without torch, a bare `torch`
requirement would pull a multi-GB CUDA build. Here `torch==2.13.0` is the CPU build
that lies on disk; elsewhere it is pip's default build for the platform.
"""

import nox

TORCH = "torch==2.13.0"
RUFF = "ruff==0.17.6"  # pinned: a new release's rules must not turn CI red on their own

nox.options.sessions = ["tests"]


@nox.session
def lint(session: nox.Session) -> None:
    """Lint (ruff: pycodestyle, pyflakes, isort, pyupgrade, bugbear) and check the formatting (ruff format)."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Install live with its test extras and run the test suite: a file a worker, one worker
    a CPU, each torch on one thread (the tiny model's steps are too small to share cores)."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    workers = ["-n", "logical", "--dist", "loadfile", "--no-loadscope-reorder"]
    session.run(
        "pytest",
        "-m",
        "not slow and not browser and not cluster",
        *workers,
        *session.posargs,
        env={"OMP_NUM_THREADS": "1"},
    )


@nox.session
def slow(session: nox.Session) -> None:
    """The shipped `shapes` model's quality (minutes on a CPU): the demo swaps the object and
    keeps the background, and samples follow their captions. CI runs it after the tests."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def browser(session: nox.Session) -> None:
    """The pages in a real browser: `live gallery` over tiny projects and `live ui` on the tiny
    model, in headless Chromium driven by Playwright through the system's browser (Debian's
    `chromium` package: `apt-get install -y chromium`; Playwright's own download is not used).
    CI runs it after the tests."""
    session.install(TORCH)
    session.install("-e", ".[test,browser,ui]")
    session.run("pytest", "-m", "browser", "tests/browser", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session
def demo(session: nox.Session) -> None:
    """Install live (a wheel: the shipped shapes weights must be in it) and run `live demo` on the shapes model."""
    session.install(TORCH)
    session.install(".")
    session.run("live", "demo", "--out", "live-demo", *session.posargs)
    session.run("live", "status", "-p", "live-demo/demo.live")


@nox.session
def cluster(session: nox.Session) -> None:
    """`live batch` under a real SLURM: installs Debian's slurm-wlm and munge where missing
    (apt, as root, like the browser session's Chromium), then the cluster tests start a
    controller and a node on this machine (tests/cluster/local_slurm.py) and stop them
    whatever happens. Skips, saying why in one line, where it cannot (no root, no apt).
    CI runs it after the tests."""
    import os
    import shutil
    import subprocess
    import sys

    wanted = ("slurmctld", "slurmd", "sbatch", "munged")
    if not all(shutil.which(name) for name in wanted):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            session.skip("no SLURM here and no root apt to install it: apt-get install slurm-wlm munge")
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "slurm-wlm", "munge", external=True)
    if os.geteuid() != 0:
        session.skip("the local cluster runs as root (SlurmUser=root): run nox -s cluster as root")
    probe = subprocess.run([sys.executable, "tests/cluster/local_slurm.py"], capture_output=True, text=True)
    if probe.returncode:
        session.skip(probe.stdout.strip() + "; install or fix slurm-wlm and munge to run the cluster tests")
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "cluster", "tests/cluster", *session.posargs, env={"OMP_NUM_THREADS": "1"})
