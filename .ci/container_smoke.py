#!/usr/bin/env python3
"""Build the container image and check that it serves, the way CI runs it.

Steps: install podman, runc and mmdebstrap when they are missing; make a Debian base image with mmdebstrap
(python3, python3-venv, ca-certificates; no registry pull) and import it; build the Containerfile on it with the
host's pip configuration and CA certificates mounted read-only; then run the image on the host network against
the fake grok.com started on the host, and check: /healthz, /readyz, the image's healthcheck, an account added
through the admin API, a chat completion answered through the fake, a non-root process, and a clean exit on
SIGTERM within the stop timeout.

Every check runs and is reported; the script fails when any does. When podman cannot run a container at all on
this machine it says why and skips (exit 0), unless GROK2API_REQUIRE_CONTAINER is set, which makes that a failure.

Usage: python3 .ci/container_smoke.py [--keep-base]    (from the repository root, as .ci/run does)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/grok2api:ci"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_MAX_AGE_SECONDS = 7 * 24 * 3600  # an older base image is made again, with current Debian packages
STOP_TIMEOUT_SECONDS = 40  # podman stop's grace before SIGKILL: above shutdown_grace_seconds (30)
ADMIN_PASSWORD = "container-smoke-password"
SMOKE_TOKEN = "container-smoke-sso"
# crun cannot start containers on hosts with hybrid (v1 + v2) cgroups; runc can.
PODMAN = ("podman", "--runtime", "runc")


def log(message: str) -> None:
    print(f"container-smoke: {message}", flush=True)


def run(args: Sequence[str], *, check: bool = True, timeout: float = 900, quiet: bool = False) -> str:
    """Run a command and return its stdout; on failure raise with its stderr."""
    if not quiet:
        log("$ " + " ".join(args))
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}… exited {done.returncode}:\n{done.stderr.strip() or done.stdout}")
    return done.stdout


# ---- tools -------------------------------------------------------------------------------------------------------


def ensure_tools() -> None:
    """apt-get install what is missing (root, or through sudo)."""
    wanted = {"podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}
    if os.geteuid() != 0:
        wanted |= {"newuidmap": "uidmap", "slirp4netns": "slirp4netns", "fuse-overlayfs": "fuse-overlayfs"}
    missing = sorted({package for tool, package in wanted.items() if shutil.which(tool) is None})
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    log(f"installing {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in ([*sudo, "apt-get", "update", "-qq"], [*sudo, "apt-get", "install", "-y", "-qq", *missing]):
        subprocess.run(args, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def ulimit_args() -> list[str]:
    """podman's default open-files limit (1048576) is more than a caller without CAP_SYS_RESOURCE may hand out,
    and then runc refuses to start the container: give the container the caller's own hard limits."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)  # podman's own default
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


# ---- the base image ----------------------------------------------------------------------------------------------


def os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name] = value.strip().strip('"')
    return fields


def apt_sources(suite: str) -> list[str]:
    """The host's apt source files for ``suite`` (so a mirror or proxy the host uses is used here too)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    found = []
    for path in candidates:
        if path.suffix not in (".list", ".sources") or not path.is_file():
            continue
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if any(suite in ln.split() or f"Suites: {suite}" in ln for ln in lines):
            found.append(str(path))
    return found or ["http://deb.debian.org/debian"]


def apt_proxy_options() -> list[str]:
    """The host's apt proxy settings, which mmdebstrap's own apt configuration would not see."""
    dump = run(["apt-config", "dump"], check=False, quiet=True)
    return [f"--aptopt={line}" for line in dump.splitlines() if "::proxy" in line.split(" ", 1)[0].lower()]


def image_age(image: str) -> float | None:
    """Seconds since ``image`` was made, or None when there is no such image."""
    out = run([*PODMAN, "image", "inspect", "--format", "{{.Created.Unix}}", image], check=False, quiet=True).strip()
    return time.time() - int(out) if out.isdigit() else None


def base_image(rebuild: bool) -> str:
    """A local image of a minimal Debian rootfs with python3, made by mmdebstrap from Debian's packages."""
    codename = os_release().get("VERSION_CODENAME", "bookworm")
    name = f"localhost/grok2api-base:{codename}"
    age = image_age(name)
    if age is not None and age < BASE_MAX_AGE_SECONDS and not rebuild:
        log(f"base image {name} is there ({age / 3600:.1f} h old)")
        return name
    with tempfile.TemporaryDirectory(prefix="grok2api-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                f"--mode={'root' if os.geteuid() == 0 else 'unshare'}",
                f"--include={','.join(BASE_PACKAGES)}",
                '--aptopt=APT::Install-Recommends "false"',
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                *apt_proxy_options(),
                codename,
                str(tarball),
                *apt_sources(codename),
            ]
        )
        run([*PODMAN, "import", "--change", 'CMD ["python3"]', str(tarball), name])
    return name


def podman_can_run(image: str) -> str:
    """'' when podman runs a container here, else why not (its error output)."""
    try:
        run([*PODMAN, "run", "--rm", "--network", "none", *ulimit_args(), image, "python3", "-c", "print('ok')"])
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return ""


# ---- the build -------------------------------------------------------------------------------------------------


def pip_config() -> dict[str, str]:
    """The host's effective pip configuration (files and PIP_* variables), as ``pip config list`` shows it."""
    return parse_pip_config(run([sys.executable, "-m", "pip", "config", "list"], check=False, quiet=True))


def parse_pip_config(listing: str) -> dict[str, str]:
    """``section.key`` -> value from ``pip config list`` lines (``global.cert='/etc/…'``, ``:env:.timeout='60'``);
    variables (``:env:``) count as ``global``."""
    settings: dict[str, str] = {}
    for line in listing.splitlines():
        name, sep, value = line.partition("=")
        if not sep or "." not in name:
            continue
        section, key = name.rsplit(".", 1)
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        section = "global" if section.startswith(":env:") else section
        settings[f"{section}.{key}"] = str(parsed)
    return settings


def ca_bundle() -> str:
    """The host's CA bundle: what pip or OpenSSL is told to use, else Debian's."""
    named = (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"))
    for candidate in (*named, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    return ""


def local_paths(value: str) -> list[Path]:
    """Host paths a pip setting refers to (wheel directories, constraint files, file:// indexes). A local index
    (``…/simple``) comes with its parent, where the files it links to live."""
    paths = []
    for word in value.split():
        path = Path(word.removeprefix("file://")) if word.startswith(("file:///", "/")) else None
        if path is None or not path.exists():
            continue
        paths.append(path.parent if word.startswith("file://") and path.name == "simple" else path)
    return paths


def build_pip_mounts(conf_file: Path) -> list[str]:
    """Write the pip configuration the build uses to ``conf_file``, and the --volume options it needs."""
    settings = pip_config()
    bundle = ca_bundle()
    if bundle and "global.cert" not in settings:
        settings["global.cert"] = bundle
    sections: dict[str, list[str]] = {}
    for name, value in settings.items():
        section, key = name.rsplit(".", 1)
        sections.setdefault(section, []).append(f"{key} = {value}")
    conf_file.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))
    mounts = {conf_file: Path("/etc/pip.conf")}
    if bundle:
        mounts[Path(bundle)] = Path(bundle)
    for value in settings.values():
        for path in local_paths(value):
            mounts[path] = path
    log("pip configuration for the build:\n" + conf_file.read_text().rstrip())
    return [arg for host, inside in mounts.items() for arg in ("--volume", f"{host}:{inside}:ro")]


def build_image(base: str) -> None:
    with tempfile.TemporaryDirectory(prefix="grok2api-pip-") as tmp:
        conf = Path(tmp) / "pip.conf"
        run(
            [
                *PODMAN,
                "build",
                "--format",
                "docker",  # keeps the HEALTHCHECK, which the OCI image format has no field for
                "--network",
                "host",  # the host's route to the package index, proxy or mirror included
                *ulimit_args(),
                "--build-arg",
                f"BASE_IMAGE={base}",
                *build_pip_mounts(conf),
                "--tag",
                IMAGE,
                "--file",
                "Containerfile",
                ".",
            ],
            timeout=1800,
        )


# ---- the run -----------------------------------------------------------------------------------------------------


@dataclass
class Report:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def check(self, name: str, test: Callable[[], str]) -> bool:
        """Run one check; ``test`` returns a detail to show or raises with the reason."""
        try:
            detail = test()
        except Exception as exc:  # every failure is reported, then the next check runs
            self.failed.append(name)
            log(f"FAIL {name}: {exc}")
            return False
        self.passed.append(name)
        log(f"ok   {name}{': ' + detail if detail else ''}")
        return True


def http(method: str, url: str, body: object = None, token: str = "", timeout: float = 30) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(status: int, payload: object, want: int = 200) -> dict[str, object]:
    if status != want or not isinstance(payload, dict):
        raise AssertionError(f"HTTP {status} (wanted {want}): {payload!r}"[:600])
    return payload


def start_fake() -> tuple[subprocess.Popen[str], str]:
    """The fake grok.com on a free loopback port of the host; returns the process and its URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "grok2api.testing.fake_grok", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "fake grok.com listening on http://127.0.0.1:PORT (assets …)"
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"the fake grok.com did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].split()[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(url: str, container: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            status, payload = http("GET", f"{url}/healthz", timeout=3)
            if status == 200:
                return json.dumps(payload)
        except OSError:
            pass
        state = run([*PODMAN, "inspect", "--format", "{{.State.Status}}", container], check=False, quiet=True)
        if state.strip() not in ("running", "created", "configured"):
            raise AssertionError(f"the container is {state.strip() or 'gone'}")
        time.sleep(0.5)
    raise AssertionError("no 200 from /healthz within 90 s")


def smoke(report: Report) -> None:
    fake, fake_url = start_fake()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    container = f"grok2api-smoke-{os.getpid()}"
    try:
        run(
            [
                *PODMAN,
                "run",
                "--detach",
                "--name",
                container,
                "--network",
                "host",  # the fake listens on the host's loopback
                "--read-only",  # as Kubernetes runs it (readOnlyRootFilesystem): only /data and tmpfs are writable
                *ulimit_args(),
                "--env",
                "GROK2API_HOST=127.0.0.1",
                "--env",
                f"GROK2API_PORT={port}",
                "--env",
                f"GROK2API_ADMIN_PASSWORD={ADMIN_PASSWORD}",
                "--env",
                f"GROK2API_UPSTREAM_URL={fake_url}",
                "--env",
                f"GROK2API_ASSETS_URL={fake_url}/assets",
                IMAGE,
            ]
        )
        if not report.check("/healthz answers 200", lambda: wait_for_health(url, container)):
            return
        report.check("/readyz answers 200", lambda: json.dumps(expect(*http("GET", f"{url}/readyz"))))
        report.check("the image's healthcheck passes", lambda: run([*PODMAN, "healthcheck", "run", container]) or "")
        report.check("the process runs as a non-root user", lambda: non_root(container))
        report.check("a chat completion is answered through the fake grok.com", lambda: chat(url, fake_url))
        report.check("SIGTERM ends the container cleanly", lambda: stop(container))
    finally:
        if report.failed:
            logs = subprocess.run([*PODMAN, "logs", container], capture_output=True, text=True, check=False)
            log("the container's log (end):\n" + (logs.stdout + logs.stderr)[-4000:])
        run([*PODMAN, "rm", "--force", "--volumes", container], check=False, quiet=True)
        fake.terminate()
        fake.wait(10)


def non_root(container: str) -> str:
    uid = run([*PODMAN, "exec", container, "id", "-u"], quiet=True).strip()
    if uid in ("", "0"):
        raise AssertionError(f"exec runs as uid {uid!r}")
    # The server process itself, read from outside: its uid on the host and its user inside.
    top = run([*PODMAN, "top", container, "huser", "user", "args"], quiet=True).splitlines()[1:]
    if not top or any({"0", "root"} & set(line.split()[:2]) for line in top):
        raise AssertionError(f"processes: {top}")
    return f"exec uid {uid}; " + "; ".join(" ".join(line.split()) for line in top)


def chat(url: str, fake_url: str) -> str:
    login = expect(*http("POST", f"{url}/api/login", {"username": "admin", "password": ADMIN_PASSWORD}))
    token = str(login["token"])
    added = expect(*http("POST", f"{url}/api/tokens/add", {"tokens": [SMOKE_TOKEN], "token_type": "sso"}, token))
    if added.get("count") != 1:
        raise AssertionError(f"adding the account: {added}")
    body = {"model": "grok-fast", "messages": [{"role": "user", "content": "Say hello from the container."}]}
    completion = expect(*http("POST", f"{url}/v1/chat/completions", body))
    choices = completion.get("choices")
    content = choices[0]["message"]["content"] if isinstance(choices, list) and choices else None
    if not isinstance(content, str) or not content.strip():
        raise AssertionError(f"no answer text: {completion}")
    _, seen = http("GET", f"{fake_url}/__fake/requests")
    if not isinstance(seen, list) or not any(r.get("token") == SMOKE_TOKEN for r in seen if isinstance(r, dict)):
        raise AssertionError("the fake grok.com saw no request with the account's token")
    return f"{content[:60]!r}…"


def stop(container: str) -> str:
    started = time.monotonic()
    run([*PODMAN, "stop", "--time", str(STOP_TIMEOUT_SECONDS), container], timeout=STOP_TIMEOUT_SECONDS + 30)
    took = time.monotonic() - started
    code = run([*PODMAN, "inspect", "--format", "{{.State.ExitCode}}", container], quiet=True).strip()
    # 0: the server returned after its drain; 143: it ended by SIGTERM's default action. 137 means podman had to
    # SIGKILL it once the stop timeout ran out.
    if code not in ("0", "143"):
        raise AssertionError(f"exit code {code} after {took:.1f} s (stop timeout {STOP_TIMEOUT_SECONDS} s)")
    return f"exit code {code} after {took:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rebuild-base", action="store_true", help="make the Debian base image even if it is recent")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    started = time.monotonic()
    ensure_tools()
    base = base_image(args.rebuild_base)
    why_not = podman_can_run(base)
    if why_not:
        message = f"podman cannot run a container on this machine, so the container smoke is SKIPPED:\n{why_not}"
        if os.environ.get("GROK2API_REQUIRE_CONTAINER"):
            log(message.replace("SKIPPED", "FAILED (GROK2API_REQUIRE_CONTAINER is set)"))
            return 1
        log(message)
        return 0
    build_image(base)
    built = time.monotonic()
    log(f"image {IMAGE} built ({built - started:.0f} s so far)")
    report = Report()
    smoke(report)
    log(f"{len(report.passed)} passed, {len(report.failed)} failed ({time.monotonic() - started:.0f} s in all)")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
