"""Closed forms for decoder-only transformers: parameters, FLOPs per token, training
memory (weights, gradients, optimizer states, activations) and MFU/HFU."""
