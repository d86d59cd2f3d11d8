"""Install NRVL: the pipeline package ``nrvl`` and the corruption library ``nrvl.kernels``.

``nrvl.kernels`` lives in the top-level ``kernels/`` folder and is mapped with
``package_dir``; nothing is installed under the bare name ``kernels``.
"""
from setuptools import find_packages, setup

VIDEO = ["torchcodec>=0.7", "decord>=0.6; platform_machine=='x86_64'", "av>=12"]
EVAL = [
    "transformers>=4.50",
    "accelerate>=0.30",
    "openai>=1.40",
    "pandas>=2.0",
    "huggingface_hub>=0.24",
    "matplotlib>=3.7",
]
DEV = [
    "pytest>=8",
    "pytest-benchmark>=4",
    "pytest-timeout>=2",
    "kornia>=0.7",
    "qwen-vl-utils>=0.0.8",
    "tokenizers>=0.19",
]

setup(
    name="nrvl",
    version="0.1.0",
    description="Noise-robustness evaluation of video language models, with a batched GPU corruption library",
    python_requires=">=3.10",
    # Every package under nrvl/, plus kernels/ mapped to nrvl.kernels (never the bare name `kernels`).
    packages=find_packages(include=["nrvl", "nrvl.*"])
    + ["nrvl.kernels"] + ["nrvl.kernels." + p for p in find_packages("kernels")],
    package_dir={
        "nrvl": "nrvl",
        "nrvl.kernels": "kernels",
        "nrvl.kernels.triton": "kernels/triton",
    },
    install_requires=["torch>=2.3", "torchvision>=0.18", "numpy>=1.24", "tqdm>=4.60", "pillow>=9"],
    extras_require={
        "video": VIDEO,
        "eval": EVAL,
        "dev": DEV,
        "all": VIDEO + EVAL + DEV,
    },
    entry_points={"console_scripts": ["nrvl=nrvl.cli:main"]},
)
