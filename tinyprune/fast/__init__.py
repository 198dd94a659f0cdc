"""The maths of ``tinyprune.core`` made fast, behind the same interfaces (as MiniTorch keeps ``SimpleOps``
and ``FastOps``): ``optim`` (flat, in-place ``SGD`` and ``Adam``), ``autograd`` (``backward`` without
copies), ``train`` (the engines of ``fit``: batch buffers, the fused cross-entropy).

``tinyprune.fit`` uses these by default; inside ``tinyprune.plain()`` it runs the core's plain code.
``tests/test_fast_paths.py`` proves both give the same numbers.
"""

from tinyprune.fast import autograd, optim, switch, train
from tinyprune.fast.switch import is_plain, plain

__all__ = ["autograd", "is_plain", "optim", "plain", "switch", "train"]
