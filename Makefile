# Two commands do all the set-up: `make run` (default benchmark) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision ranges live in pyproject.toml; these pins pick the builds served here.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: run test venv leaderboards check-leaderboards synthetic-table docs clean

$(BIN)/dferbench: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS) || $(BIN)/python -m pip install -q torch torchvision
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(BIN)/dferbench

venv: $(BIN)/dferbench

## Set up, run the default benchmark (zero-shot CLIP and DFER-CLIP on synthetic, 5 folds), print the leaderboard.
run: venv
	$(BIN)/dferbench run --model suite:default --dataset synthetic --output runs/default --no-leaderboard
	$(BIN)/dferbench leaderboard --results runs/default --out runs/default/leaderboards --dataset synthetic
	cat runs/default/leaderboards/synthetic.md

## Regenerate the committed synthetic results and leaderboards (one torch thread: reproducible, see tests/test_reproduce_results.py).
synthetic-table: venv
	OMP_NUM_THREADS=1 $(BIN)/dferbench run --model suite:paper --dataset synthetic --output results --no-leaderboard
	OMP_NUM_THREADS=1 $(BIN)/dferbench run --model suite:paper --dataset synthetic-11 --output results --no-leaderboard
	$(BIN)/dferbench leaderboard --results results --out leaderboards

## Set up and run the test suite (slow end-to-end tests included: SLOW=0 skips them).
test: venv
	$(BIN)/python -m pytest $(if $(filter 0,$(SLOW)),-m "not slow",) $(PYTEST_ARGS)

leaderboards: venv
	$(BIN)/dferbench leaderboard --results results --out leaderboards

check-leaderboards: venv
	$(BIN)/dferbench leaderboard --results results --out leaderboards --check

docs: venv
	$(BIN)/python -m dferbench.tools.clidoc

clean:
	rm -rf runs .pytest_cache
