"""Adam computing torch.optim.Adam's update, which MindSpore's nn.Adam does not.

nn.Adam adds epsilon to sqrt(v) before the bias correction, PyTorch and Paddle after it: at step 1
nn.Adam's epsilon weighs 1 / sqrt(1 - beta2) = 31.6 times more, which shortens the steps of parameters
whose gradients are near epsilon.
"""
import mindspore as ms
from mindspore import nn, ops


class Adam(nn.Optimizer):
    """torch.optim.Adam (amsgrad=False), with the L2 weight decay of the parameter groups added to the gradient.

    Its state is Parameters, so checkpoints carry it: `moment1.<name>`, `moment2.<name>` (nn.Adam's names)
    and the step count `global_step` of nn.Optimizer.
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(learning_rate, params)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.moment1 = self.parameters.clone(prefix="moment1", init="zeros")
        self.moment2 = self.parameters.clone(prefix="moment2", init="zeros")

    @ms.jit
    def construct(self, gradients):
        gradients = self.decay_weight(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        # Like PyTorch, the bias corrections in double precision.
        step = self.global_step.astype(ms.float64).reshape(())
        step_size = (lr.astype(ms.float64) / (1 - ops.pow(self.beta1, step))).astype(ms.float32)
        bias_correction2_sqrt = ops.sqrt(1 - ops.pow(self.beta2, step)).astype(ms.float32)
        for param, moment1, moment2, grad in zip(self.parameters, self.moment1, self.moment2, gradients):
            new_moment1 = self.beta1 * moment1 + (1 - self.beta1) * grad
            new_moment2 = self.beta2 * moment2 + (1 - self.beta2) * grad * grad
            ops.assign(moment1, new_moment1)
            ops.assign(moment2, new_moment2)
            ops.assign(param, param - step_size * new_moment1 / (ops.sqrt(new_moment2) / bias_correction2_sqrt
                                                                 + self.eps))
        return True
