"""Running trainings the way kplaybook records them (see `runner`)."""
