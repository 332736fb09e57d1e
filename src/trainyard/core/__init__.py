"""Pure domain of trainyard: models, statuses and transitions, errors, settings. No I/O."""
