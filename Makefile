# Two commands do all set-up on a fresh machine:
#   make book   — create .venv if missing, install, execute every notebook (book profile), build the book
#   make test   — same venv; unit tests + strict nbval on the stored notebooks + a smoke build of the book
# `make` (= `make venv`) only installs: the exact versions in $(LOCK), then this project without deps.
# It re-installs whenever pyproject.toml or the lock is newer than the stamp.
# `make lock` re-resolves $(LOCK) from pyproject.toml (extras book,ray,test) after a dependency change,
# keeping every pin that still fits (delete the lock first to re-resolve everything).
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements/lock.txt
PIP    := $(VPY) -m pip --disable-pip-version-check

# `make lock`: uv in a throwaway venv (never in .venv), resolving for the oldest supported Python.
LOCK_TOOL   := _build/lock-tool
UV_VERSION  := 0.13.9
LOCK_PYTHON := 3.11
# A folder holding torch's CPU-only wheel, so the lock carries no CUDA packages; its local version
# tag (+cpu) is stripped, so `torch==X` installs PyPI's build (CUDA on Linux) on other machines.
TORCH_WHEELS ?= /opt/wheels

# The public CMU-MOSI utterance features (`dataset=mosi-utterance`) are fetched by pooch into its
# OS cache; where the project's shared copy sits beside the checkout (this workplace, CI), tests and
# the book read it from there instead (MSA_BOOK_DATA, unless already set).
SHARED_MOSI := $(abspath ../shared/data/mosi-utterance)
ifneq ($(wildcard $(SHARED_MOSI)/README.md),)
export MSA_BOOK_DATA ?= $(SHARED_MOSI)
endif

.DEFAULT_GOAL := venv
.PHONY: venv lock book test smoke-book benchmark clean

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: $(PYTHON) is Python <3.11; run e.g. 'make PYTHON=python3.11'" >&2; exit 1; }
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -r $(LOCK)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

lock:
	test -x $(LOCK_TOOL)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOL) && \
	  $(LOCK_TOOL)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); }
	# uv keeps the pins it finds in the output file: only what changed is re-resolved (torch's pin
	# is left out, it would pick PyPI's CUDA build over the local CPU wheel)
	grep -v '^torch==' $(LOCK) > $(LOCK).tmp
	$(LOCK_TOOL)/bin/uv pip compile pyproject.toml --extra book --extra ray --extra test \
	  --python-version $(LOCK_PYTHON) --find-links $(TORCH_WHEELS) \
	  --custom-compile-command 'make lock' --quiet -o $(LOCK).tmp
	{ echo "# Every package of the project's dependency tree (pyproject.toml, extras book,ray,test), pinned."; \
	  echo "# Resolved for Python $(LOCK_PYTHON) on Linux x86_64 with torch's CPU wheel; torch is pinned"; \
	  echo "# without its local tag, so on a GPU machine pip installs PyPI's CUDA build with its own deps."; \
	  echo "# Install: pip install -r $(LOCK) && pip install --no-deps -e .   (what \`make\` does)"; \
	  echo "# Regenerate after editing pyproject.toml: make lock"; \
	  sed -E 's/^(torch==[^+ ]+)\+[^ ]+/\1/' $(LOCK).tmp; } > $(LOCK)
	rm -f $(LOCK).tmp
	@! grep -nE '^(nvidia-|triton==|torch==.*\+)' $(LOCK) || \
	  { echo "error: $(LOCK) pins CUDA packages; set TORCH_WHEELS to a folder with torch's CPU wheel" >&2; exit 1; }

book: $(STAMP)
	$(VPY) book/build.py --profile book

test: $(STAMP)
	$(VPY) -m pytest

smoke-book: $(STAMP)
	$(VPY) book/build.py --profile smoke

benchmark: $(STAMP)
	$(VPY) benchmarks/throughput.py

clean:
	rm -rf _build
