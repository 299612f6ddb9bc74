"""Cross-dataset transfer: train on one dataset, test on another over the classes both have.

The protocol of ``dferbench run --model M --dataset TEST --train-dataset TRAIN``:

* the model trains on TRAIN with its preset for TRAIN, the recipe of TRAIN's plain run:
  on the train split of TRAIN's fold K (``--train-fold K``), of the TRAIN fold numbered
  like the TEST fold being tested (``same``, the default), or on every clip of TRAIN once
  (``all``: each fold's train and test clips);
* it is tested on the test split of each TEST fold. Classes are matched by their canonical
  emotion names (:attr:`dferbench.data.records.DFERDataset.emotions`); the shared classes
  are TEST's classes whose emotion TRAIN has, in TEST's order. TEST clips of the other
  classes are dropped, and a clip's prediction is the argmax of the model's logits over the
  shared classes only: a class TRAIN has and TEST lacks can never take a clip. UAR and WAR
  are over the shared classes, so they are not comparable with TEST's plain leaderboard
  when TEST has classes TRAIN lacks;
* TRAIN's ``[data]`` options (``root``...) are its registered defaults with
  ``--train-set data.KEY=VALUE`` on top; the clip settings (frames, size, normalisation,
  augmentation, workers) are the run's. ``data.augmentation = "auto"`` is TRAIN's;
* each unit's result (``protocol = "transfer"``, ``train_dataset``, ``train_fold``,
  ``class_map``, ``dropped_test_classes``, ``unscored_train_classes``) lives at
  ``OUTPUT/<TEST>/<run>/transfer-from-<TRAIN>[-foldK|-all]/foldK-seedS.json``, never a
  plain run's path; its config hash adds TRAIN, the training fold and TRAIN's settings.

Selection by test WAR (``best_on_test``) is refused: it would pick the epoch on TEST.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from dferbench.errors import DferbenchError
from dferbench.plugin import manager as plugins
from dferbench.run import config as cfg
from dferbench.run import runner
from dferbench.run.protocols import MakeClipSet, Standard
from dferbench.run.results import protocol_folder

SAME = "same"
ALL = "all"


def parse_train_fold(value: str | int) -> str | int:
    """``same``, ``all`` or a fold number."""
    text = str(value).strip().lower()
    if text in (SAME, ALL):
        return text
    try:
        return int(text)
    except ValueError:
        raise DferbenchError(f"--train-fold must be 'same', 'all' or a fold number, got {value!r}") from None


def shared_classes(train_emotions: Sequence[str], test_emotions: Sequence[str]) -> list[tuple[int, int]]:
    """``(test class index, train class index)`` for each TEST class whose emotion TRAIN has,
    in TEST's order."""
    where = {e: i for i, e in enumerate(train_emotions)}
    return [(j, where[e]) for j, e in enumerate(test_emotions) if e in where]


class Transfer(Standard):
    """Train on ``train_dataset`` (built from ``train_data``), test on the run's dataset."""

    name = "transfer"

    def __init__(self, train_dataset: str, train_fold: str | int, train_data: cfg.Config, train_spec: cfg.Spec):
        self.train_dataset, self.train_fold = train_dataset, train_fold
        self.train_data, self.train_spec = train_data["data"], train_spec
        self.protocol_dir = protocol_folder({"protocol": self.name, "train_dataset": train_dataset,
                                             "train_fold": train_fold})

    def hash_parts(self) -> dict[str, Any]:
        return {"train_dataset": self.train_dataset, "train_fold": self.train_fold,
                "train_data": cfg.identity({"data": self.train_data}, self.train_spec)}

    def prepare(self, dataset: Any, folds: Sequence[int], datasets: dict[str, Any],
                echo: Callable[[str], None]) -> None:
        self.train = train = runner.load_dataset(self.train_dataset, self.train_data, datasets)
        wanted = sorted(set(folds)) if self.train_fold == SAME else [self.train_fold] if self.train_fold != ALL else []
        missing = [f for f in wanted if f not in train.splits]
        if missing:
            pairing = f"to pair with {dataset.name} fold {missing[0]}" if self.train_fold == SAME else "to train on"
            raise DferbenchError(f"training dataset {self.train_dataset!r} has no fold {missing[0]} {pairing} "
                                 f"(its folds: {train.folds}); give --train-fold with one of them, or all")
        pairs = shared_classes(train.emotions, dataset.emotions)
        if not pairs:
            raise DferbenchError(f"{self.train_dataset} ({', '.join(train.emotions)}) and {dataset.name} "
                                 f"({', '.join(dataset.emotions)}) share no emotion: nothing to score")
        self.test_index = {j: k for k, (j, _) in enumerate(pairs)}
        self.columns = [i for _, i in pairs]
        self.classes = [dataset.classes[j] for j, _ in pairs]
        self.model_classes = list(train.classes)
        self.class_map = {dataset.classes[j]: train.classes[i] for j, i in pairs}
        self.dropped = [c for j, c in enumerate(dataset.classes) if j not in self.test_index]
        self.unscored = [c for i, c in enumerate(train.classes) if i not in self.columns]
        echo(f"transfer {self.train_dataset} -> {dataset.name}: {len(pairs)} shared classes; dropped from "
             f"{dataset.name} (their test clips are not scored): {', '.join(self.dropped) or 'none'}; "
             f"{self.train_dataset} classes never predicted: {', '.join(self.unscored) or 'none'}")

    def record(self) -> dict[str, Any]:
        return {"protocol": self.name, "train_dataset": self.train_dataset, "train_fold": self.train_fold,
                "train_classes": list(self.model_classes), "class_map": dict(self.class_map),
                "dropped_test_classes": list(self.dropped), "unscored_train_classes": list(self.unscored)}

    def _train_records(self, fold: int) -> list[Any]:
        if self.train_fold != ALL:
            return self.train.split(fold if self.train_fold == SAME else self.train_fold, "train")
        seen: dict[str, Any] = {}
        for k in self.train.folds:
            for split in ("train", "test"):
                for record in self.train.split(k, split):
                    seen.setdefault(record.clip_id, record)
        return list(seen.values())

    def clipsets(self, dataset: Any, fold: int, make: MakeClipSet) -> tuple[Any, Any]:
        setting = self.train_data["augmentation"]
        train = make(self._train_records(fold), name=self.train_dataset, reader=self.train.reader,
                     augmentation=self.train.augmentation if setting == "auto" else setting)
        test = [dataclasses.replace(r, label=self.test_index[r.label]) for r in dataset.split(fold, "test")
                if r.label in self.test_index]
        return train, make(test)

    def scores(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits)[:, self.columns]


def train_data(train_dataset: str, config: cfg.Config, overrides: Sequence[str]) -> tuple[cfg.Config, cfg.Spec]:
    """TRAIN's ``[data]`` section (as a config of that one section) and its options: TRAIN's
    registered option defaults, the run's clip settings, then ``overrides`` (``data.KEY=VALUE`` only)."""
    spec = {"data": runner.dataset_spec(plugins.get("dataset", train_dataset))["data"]}
    data = cfg.defaults(spec)
    data["data"].update({k: v for k, v in config["data"].items() if k in cfg.CORE_OPTIONS["data"]})
    for text in overrides:
        section, key, value = cfg.parse_override(text)
        if section != "data":
            raise DferbenchError(f"--train-set {text!r}: only data settings of the training dataset can be set "
                                 "here; set the model and training with --set")
        data = cfg.merge(data, {section: {key: value}}, f"--train-set {text}", spec)
    return data, spec


def plan(model: str, dataset: str, train_dataset: str, *, train_fold: str | int = SAME,
         train_overrides: Sequence[str] = (), **plan_options: Any) -> runner.RunPlan:
    """A run of ``model`` trained on ``train_dataset`` and tested on ``dataset``; validated
    like :func:`dferbench.run.runner.plan`, whose keywords ``plan_options`` are."""
    train_fold = parse_train_fold(train_fold)
    if train_dataset == dataset:
        raise DferbenchError(f"--train-dataset is the dataset tested ({dataset!r}): that is a plain run, "
                             "drop --train-dataset")
    run = runner.plan(model, dataset, preset_dataset=train_dataset, **plan_options)
    if run.config["protocol"]["selection"] != "last_epoch":
        raise DferbenchError(f"transfer runs keep the last epoch's weights; protocol.selection = "
                             f"{run.config['protocol']['selection']!r} would choose them on {dataset!r}'s test "
                             "split: drop the setting")
    protocol = Transfer(train_dataset, train_fold, *train_data(train_dataset, run.config, train_overrides))
    return dataclasses.replace(run, protocol=protocol)
