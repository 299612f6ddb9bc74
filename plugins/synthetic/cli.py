"""The synthetic plugin's command: rebuild the embedded tiny CLIP."""

from __future__ import annotations

import click


@click.command(name="pretrain-clip", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def pretrain_clip_command(args) -> None:
    """Rebuild the embedded face-domain tiny CLIP (dferbench-tiny, "dferbench-synthetic").

    \b
    Arguments are those of `python -m dferbench_plugins.synthetic.pretrain` (pass --help to list them):
      dferbench pretrain-clip --steps 1200 --batch-size 128 --out my-tiny-clip.safetensors
    The shipped file's recipe, command and sha256 are in
    plugins/synthetic/clip/dferbench-tiny-synthetic.json.
    """
    from dferbench_plugins.synthetic import pretrain

    pretrain.main(list(args))
