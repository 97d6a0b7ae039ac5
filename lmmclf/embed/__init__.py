"""CLIP embeddings of images and of LMM descriptions (the ``embed`` stage).

``specs`` computes the keys, ``images`` and ``texts`` run the encoders, ``run`` writes the
artifacts, ``read`` loads them back with h5py and numpy only.
"""

from lmmclf.embed.specs import IMAGE_STAGE, TEXT_STAGE, covered_items, image_embed_spec, text_embed_spec

__all__ = ["IMAGE_STAGE", "TEXT_STAGE", "covered_items", "image_embed_spec", "text_embed_spec"]
