"""The embedded benchmark: procedurally rendered face clips, no files needed."""

from __future__ import annotations

from typing import Any, Mapping

from dferbench import hookimpl

OPTIONS = {"num_clips": 400, "generator_seed": 0, "render_size": 64}


def _factory(num_classes: int, domain: str = "synthetic"):
    def build(options: Mapping[str, Any]):
        from dferbench.data.synthetic import make_synthetic_dataset

        return make_synthetic_dataset(num_classes=num_classes, num_clips=options["num_clips"],
                                      image_size=options["render_size"], seed=options["generator_seed"],
                                      domain=domain)

    return build


@hookimpl
def dferbench_register_datasets(register):
    register("synthetic", _factory(7), options=OPTIONS,
             description="Rendered face clips, 7 classes in DFEW order, 5 subject-independent folds (default)")
    register("synthetic-11", _factory(11), options=OPTIONS,
             description="Rendered face clips, 11 classes in MAFW order, 5 subject-independent folds")
    register("synthetic-wild", _factory(7, "synthetic-wild"), options=OPTIONS,
             description="A shifted domain of synthetic: other identities, wider head poses, darker coloured "
                         "light, more occlusion, noise and blur; 7 classes in DFEW order, 5 folds")
