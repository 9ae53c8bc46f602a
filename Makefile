# Two commands do all set-up on a fresh machine:
#   make book   — create .venv if missing, install, execute every notebook (book profile), build the book
#   make test   — same venv; unit tests + strict nbval on the stored notebooks + a smoke build of the book
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv book test smoke-book benchmark clean

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -e '.[book,test]'
	touch $(STAMP)

venv: $(STAMP)

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
