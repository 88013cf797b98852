"""ImageNet-C-style corruption families, batched and seeded; each module registers its classes
on import, and ``degradations/__init__.py`` imports them all (docs/degradations.md, "The
corruption suite")."""
