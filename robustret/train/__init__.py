"""Training: the shared epoch loop and the trainers built on it."""
