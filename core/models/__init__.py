"""Models: chat models (local llama.cpp or OpenAI-compatible), embedders, and which one answers.

``chat`` builds chat models; ``embeddings`` the embedder and its identity; ``registry``
keeps fine-tuned versions and the promoted one; ``lineup`` picks base or fine-tuned
per question; ``fallbacks`` records when the base model stood in.
"""
