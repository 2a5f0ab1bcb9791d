"""Prompts for masked token models: which tokens of an input are kept and which are regenerated (VampNet)."""
