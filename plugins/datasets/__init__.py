"""The real DFER datasets and user-described ones, loaded from a path the user gives."""

from __future__ import annotations

from typing import Any, Mapping

from dferbench import DFEW_CLASSES, MAFW_CLASSES, Option, check_file, hookimpl

# The label orders of DFER-CLIP's annotation files are registered (FERV39k's is DFEW's), so
# that a checkpoint's classes can be named and checked without the data. They are the
# canonical emotion names (dferbench.EMOTIONS), so each dataset's emotions are its class names.

# Option defaults join the run's [data] section; keep in sync with the factories' reads.
FRAME_ORDER = Option("natural", "natural sorts digit runs as numbers (2.jpg < 10.jpg); plain sorts names as "
                     "strings, like the official glob + sort", choices=("natural", "plain"))
COMMON = {"root": "", "annotations": "", "frames_dir": "", "frame_order": FRAME_ORDER, "skip_bad_clips": False}
CUSTOM = {"file": Option("", "the CSV or TOML file that lists the clips", check=check_file, path=True),
          "augmentation": "none", "frame_order": FRAME_ORDER, "skip_bad_clips": False}


def build_dfew(options: Mapping[str, Any]):
    from dferbench_plugins.datasets.layouts import build_dfew

    return build_dfew(options)


def build_ferv39k(options: Mapping[str, Any]):
    from dferbench_plugins.datasets.layouts import build_ferv39k

    return build_ferv39k(options)


def build_mafw(options: Mapping[str, Any]):
    from dferbench_plugins.datasets.layouts import build_mafw

    return build_mafw(options)


def build_custom(options: Mapping[str, Any]):
    from dferbench_plugins.datasets.custom import build_custom

    return build_custom(options)


def _check(name: str):
    def check(options: Mapping[str, Any], report) -> None:
        from dferbench_plugins.datasets.checks import check_annotations

        check_annotations(name, options, report)

    return check


@hookimpl
def dferbench_register_datasets(register):
    register("dfew", build_dfew, options=dict(COMMON), classes=DFEW_CLASSES, check=_check("dfew"),
             description="DFEW: 11,697 movie clips, 7 classes, 5 folds (data.root = the DFEW release)")
    register("ferv39k", build_ferv39k, options=dict(COMMON), classes=DFEW_CLASSES, check=_check("ferv39k"),
             description="FERV39k: 38,935 clips, 7 classes, one train/test split (DFER-CLIP annotation files)")
    register("mafw", build_mafw, options=dict(COMMON), classes=MAFW_CLASSES, check=_check("mafw"),
             description="MAFW: 9,172 single-label clips, 11 classes, 5 folds (DFER-CLIP annotation files)")
    register("custom", build_custom, options=dict(CUSTOM), check=_check("custom"),
             description="Your own clips (frame folders or videos) listed in a CSV or TOML file (data.file)")
