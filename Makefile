# The README's two commands. Both do all set-up on a fresh machine (a virtual environment in
# .venv, the local CPU build of PyTorch first so no multi-GB CUDA wheel is pulled).
#   make bench   -> seglosses bench (quick preset on the built-in synthetic tasks, writes a report)
#   make test    -> the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
# the test extra pulls nnU-Net (which needs torchvision): pin the matching torchvision with torch, or
# pip picks a newer torchvision that drags in another torch
TEST_TORCH ?= $(TORCH) torchvision==0.28.0
OUT    ?= seglosses_out

.PHONY: bench test install install-test browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q $(TORCH) -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q $(TEST_TORCH) -e ".[test]"

# Headless Chromium renders report.html in the tests (Debian package; root on this machine).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: install Debian's 'chromium' package for the report test"; fi; }

bench: install
	$(BIN)/seglosses bench --out $(OUT)

test: install-test browser
	$(BIN)/python -m pytest -n 2 -q

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis
