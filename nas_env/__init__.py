"""Neural Architecture Search with reinforcement learning (Zoph & Le, ICLR 2017) as Gymnasium envs.

Importing the package registers the environments::

    import gymnasium as gym, nas_env
    env = gym.make("NAS-CIFAR10-v0")
"""

from gymnasium.envs.registration import register

__version__ = "0.1.0"

register(id="NAS-CIFAR10-v0", entry_point="nas_env.envs.cifar10:CifarNASEnv")
register(id="NAS-PTB-v0", entry_point="nas_env.envs.ptb:PtbNASEnv")
register(id="NAS-PTBChar-v0", entry_point="nas_env.envs.ptb:PtbCharNASEnv")
register(id="NAS-Bench-201-v0", entry_point="nas_env.envs.nb201:NASBench201Env")
