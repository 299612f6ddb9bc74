# Two commands do all the set-up: `make run` (default benchmark) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision ranges live in pyproject.toml; these pins pick the builds served here.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: run test venv leaderboards check-leaderboards site site-screenshots synthetic-table docs clean

$(BIN)/dferbench: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS) || $(BIN)/python -m pip install -q torch torchvision
	$(BIN)/python -m pip install -q -e '.[test]'
	# MTCNN for predict's face tests: facenet-pytorch pins torch<2.3, so it comes without its pins
	$(BIN)/python -m pip install -q --no-deps facenet-pytorch==2.6.0 && $(BIN)/python -m pip install -q requests
	touch $(BIN)/dferbench

venv: $(BIN)/dferbench

## Set up, run the default benchmark (zero-shot CLIP and DFER-CLIP on synthetic, 5 folds), print the leaderboard.
run: venv
	$(BIN)/dferbench run --model suite:default --dataset synthetic --output runs/default --no-leaderboard
	$(BIN)/dferbench leaderboard --results runs/default --out runs/default/leaderboards --dataset synthetic
	cat runs/default/leaderboards/synthetic.md

## Regenerate the committed synthetic results and leaderboards, robustness and transfer included (the same bytes on any AVX2 x86-64 CPU: see scripts/synthetic_table.sh).
synthetic-table: venv
	scripts/synthetic_table.sh results
	$(BIN)/dferbench leaderboard --results results --out leaderboards

## Set up and run the test suite (slow end-to-end tests included: SLOW=0 skips them).
test: venv
	$(BIN)/python -m pytest $(if $(filter 0,$(SLOW)),-m "not slow",) $(PYTEST_ARGS)

leaderboards: venv
	$(BIN)/dferbench leaderboard --results results --out leaderboards

check-leaderboards: venv
	$(BIN)/dferbench leaderboard --results results --out leaderboards --check

## Build the leaderboard site from the committed results: open build/site/index.html (file:// works).
site: venv
	$(BIN)/dferbench site --results results --out build/site

## The README's screenshots of the site, taken by the browser tests (needs Debian's chromium and chromium-driver).
site-screenshots: venv
	rm -rf build/screenshots
	DFERBENCH_SCREENSHOTS=build/screenshots CI=true $(BIN)/python -m pytest -q tests/test_site_browser.py
	mkdir -p docs/images
	cp build/screenshots/site-index.png build/screenshots/site-row.png docs/images/

docs: venv
	$(BIN)/python -m dferbench.tools.clidoc

clean:
	rm -rf runs .pytest_cache build/site build/screenshots
