"""The maths of ``tinyprune.core`` made fast, behind the same interfaces (as MiniTorch keeps ``SimpleOps``
and ``FastOps``): ``optim`` (flat, in-place ``SGD`` and ``Adam``), ``autograd`` (``backward`` without
copies), ``train`` (the engines of ``fit``: batch buffers, the fused cross-entropy).

``tinyprune.fit`` uses these by default; inside ``tinyprune.core.plain()`` it runs the core's plain code.
``tests/test_fast_paths.py`` proves both give the same numbers.
"""

from tinyprune.fast import autograd, optim, train

__all__ = ["autograd", "optim", "train"]
