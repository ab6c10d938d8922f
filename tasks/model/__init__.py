"""The Keras LSTM: built, trained, stopped and checkpointed on validation, saved and loaded.
May import: core, features, distribution."""
