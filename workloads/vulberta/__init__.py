"""VulBERTa workloads: mlp (RoBERTa-base classifier) and cnn (TextCNN head)."""
