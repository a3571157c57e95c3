"""Child training: model + data + recipe -> metrics. Knows nothing of RL."""
