"""Fine-tuning: datasets from feedback and documents, OpenAI jobs, local LoRA, serving a local model.

``dataset`` builds and validates chat-format JSONL; ``openai_job`` runs a job on an
OpenAI-compatible fine-tuning API; ``local_lora`` trains a LoRA adapter on a local
Hugging Face model; ``model_server`` serves a local model over the OpenAI chat API.
The heavy libraries (torch, transformers, peft) are imported only by the local parts.
"""
