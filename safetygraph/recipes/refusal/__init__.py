"""The refusal recipe: the multi-head refusal dataset merged from the profile's sources."""
