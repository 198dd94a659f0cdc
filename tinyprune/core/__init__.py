"""The textbook: an MLP trained by hand-derived backprop or autograd, in plain NumPy, one formula a line.

Read in this order: ``autograd`` (the Tensor), ``nn`` (layers, the MLP, masks), ``losses``, ``backprop``
(the chain rule by hand), ``optim`` (SGD, Adam), ``batches`` (the Dataset), ``train`` (fit, evaluate).
Imports only NumPy, the standard library and itself; ``tinyprune.fast`` is the same maths made fast."""
