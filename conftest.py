"""pytest runs the notebooks at CI size: kernels started by nbval inherit this variable."""
import os

os.environ.setdefault("DDPM_TEACH_SIZE", "ci")
