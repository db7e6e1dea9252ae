"""Small-image diffusion on scikit-learn's 8x8 digits: data, a class-conditional U-Net, a noisy classifier."""
