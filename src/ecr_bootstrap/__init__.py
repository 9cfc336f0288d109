"""Bootstrap container-image delivery to Amazon ECR from a GitHub Actions step."""

__version__ = "0.1.0"
