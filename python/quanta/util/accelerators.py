"""Names of accelerator models for the accelerator_type option (as Ray's ray.util.accelerators).

`@quanta.remote(num_gpus=1, accelerator_type=NVIDIA_TESLA_V100)` runs only on nodes that
advertise the resource `accelerator_type:V100`: nodes detect their NVIDIA model with nvidia-smi,
or are given it with resources={"accelerator_type:V100": 1}.
"""

NVIDIA_TESLA_V100 = "V100"
NVIDIA_TESLA_P100 = "P100"
NVIDIA_TESLA_T4 = "T4"
NVIDIA_TESLA_P4 = "P4"
NVIDIA_TESLA_K80 = "K80"
NVIDIA_TESLA_A10G = "A10G"
NVIDIA_L4 = "L4"
NVIDIA_A100 = "A100"
NVIDIA_H100 = "H100"

__all__ = [name for name in dir() if name.startswith("NVIDIA_")]
