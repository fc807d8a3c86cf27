"""A faster memory allocator for the command line (issue 17, ``benchmarks/sample_throughput.py``).

Sampling and training allocate and free the same few large activation tensors at every network
call.  glibc's malloc hands blocks over 128 KiB back to the kernel with ``munmap`` and maps them
again on the next call, so every call pays page faults and kernel time.  tcmalloc keeps the
memory; ``python benchmarks/sample_throughput.py`` measures what that gives (README, "Sampling").

``python -m ddpm_teach`` therefore restarts itself once, before torch is imported, with
``LD_PRELOAD`` naming tcmalloc when Debian's ``libtcmalloc-minimal4`` is installed
(``scripts/setup.sh`` installs it), and otherwise with glibc tunables that keep freed memory
instead of returning it (``GLIBC_TUNABLES``).  ``DDPM_TEACH_ALLOCATOR=system`` turns this off;
nothing changes on systems other than Linux, or when ``LD_PRELOAD`` / ``GLIBC_TUNABLES`` are
already set by the user.  A notebook cannot swap its allocator after start-up: start Jupyter
with ``LD_PRELOAD`` set (``scripts/setup.sh`` does) for the same effect.
"""
from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping

__all__ = ["TCMALLOC_GLOB", "JEMALLOC_GLOB", "GLIBC_KEEP_MEMORY", "ALLOCATORS", "find_tcmalloc", "allocator_settings",
           "without_allocator_settings", "allocator_environment", "restart_with_fast_allocator"]

TCMALLOC_GLOB = "/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4"
JEMALLOC_GLOB = "/usr/lib/*-linux-gnu/libjemalloc.so.2"
# keep up to 32 MiB blocks on the heap instead of mmap/munmap per call, and never trim it
GLIBC_KEEP_MEMORY = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"
MARKER = "DDPM_TEACH_ALLOCATOR_SET"
# the variables an allocator choice sets; a row of the benchmark starts from an environment without them
ALLOCATOR_VARIABLES = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD",
                       "DDPM_TEACH_ALLOCATOR", MARKER)
ALLOCATORS = ("glibc", "glibc tunables", "jemalloc", "tcmalloc")


def _find(pattern: str) -> str | None:
    found = sorted(glob.glob(pattern))
    return found[0] if found else None


def find_tcmalloc() -> str | None:
    """The path of Debian's tcmalloc (libtcmalloc-minimal4), or None."""
    return _find(TCMALLOC_GLOB)


def allocator_settings(name: str, tcmalloc: str | None = None, jemalloc: str | None = None) -> dict[str, str] | None:
    """The environment variables that select allocator ``name`` (one of :data:`ALLOCATORS`), or
    None when its library is not installed.  ``tcmalloc`` / ``jemalloc`` override the library search."""
    if name == "glibc":
        return {}
    if name == "glibc tunables":
        return {"GLIBC_TUNABLES": GLIBC_KEEP_MEMORY}
    if name == "tcmalloc":
        path = tcmalloc or find_tcmalloc()
        # no "large alloc" lines on stderr
        return {"LD_PRELOAD": path, "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)} if path else None
    if name == "jemalloc":
        path = jemalloc or _find(JEMALLOC_GLOB)
        # keep freed pages, as the glibc tunables do
        return {"LD_PRELOAD": path, "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"} if path else None
    raise ValueError(f"unknown allocator {name!r}: expected one of {', '.join(ALLOCATORS)}")


def without_allocator_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less every variable that an allocator choice (or the restart) sets."""
    return {k: v for k, v in environ.items() if k not in ALLOCATOR_VARIABLES}


def allocator_environment(environ: Mapping[str, str], platform: str = sys.platform,
                          tcmalloc: str | None = None) -> dict[str, str] | None:
    """The environment to restart with, or None to run as is (not Linux, turned off, already
    done, or the user set LD_PRELOAD / GLIBC_TUNABLES themselves)."""
    if not platform.startswith("linux") or environ.get(MARKER) or environ.get("DDPM_TEACH_ALLOCATOR") == "system":
        return None
    if environ.get("LD_PRELOAD") or environ.get("GLIBC_TUNABLES"):
        return None
    settings = allocator_settings("tcmalloc", tcmalloc=tcmalloc) if tcmalloc else allocator_settings("glibc tunables")
    return {**environ, MARKER: "1", **settings}


def restart_with_fast_allocator(argv: list[str], script: str | None = None) -> None:
    """Replace this process by ``python -m ddpm_teach argv`` (or ``python script argv``) with the
    faster allocator, if :func:`allocator_environment` says so; otherwise return and carry on."""
    env = allocator_environment(os.environ, tcmalloc=find_tcmalloc())
    if env is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        target = [script] if script else ["-m", "ddpm_teach"]
        os.execve(sys.executable, [sys.executable, *target, *argv], env)
    except OSError:                      # cannot restart (odd interpreter): run with the allocator we have
        return


def add_to_kernel_spec(path: str) -> dict[str, str]:
    """Put the faster allocator into a Jupyter kernel spec's ``env`` (``scripts/setup.sh`` does
    this for the virtual environment's python3 kernel), so that notebooks, whose allocator cannot
    change once they run, start with it.  Returns the entries written ({} when there is nothing to do)."""
    import json

    with open(path) as f:
        spec = json.load(f)
    env = allocator_environment({}, tcmalloc=find_tcmalloc())
    if env is None:
        return {}
    entries = {k: v for k, v in env.items() if k != MARKER}
    spec["env"] = {**spec.get("env", {}), **entries}
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(tmp, path)
    return entries


if __name__ == "__main__":          # python -m ddpm_teach.allocator KERNEL_JSON
    if len(sys.argv) != 2:
        print("usage: python -m ddpm_teach.allocator PATH/TO/kernel.json", file=sys.stderr)
        sys.exit(2)
    written = add_to_kernel_spec(sys.argv[1])
    print(f"{sys.argv[1]}: " + (", ".join(f"{k}={v}" for k, v in written.items()) or "unchanged"))
