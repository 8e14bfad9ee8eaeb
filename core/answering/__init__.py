"""Answering: a Question in, a stream of answer events out.

``assistant`` runs the chain (memory → condense → route → retrieve → prompt →
stream → check figures → cite → remember); ``answers`` holds the values frontends
exchange with it; ``extractive`` answers by quoting the passages' sentences and
judges whether they answer at all; ``prompts``, ``grounding`` and ``safety`` shape
and check what the model sees and says; ``history`` is conversation memory scoped by access;
``router`` picks rag, fine-tuned or hybrid; ``feedback`` records votes; ``access``
turns platform identities and channel policies into principals.
"""
