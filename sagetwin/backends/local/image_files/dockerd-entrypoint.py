"""Entry point of the inference image, as in the Hugging Face inference DLC: `serve` starts MMS."""

import shlex
import subprocess
import sys

if sys.argv[1:2] == ["serve"]:
    from sagemaker_huggingface_inference_toolkit import serving

    serving.main()
else:
    subprocess.check_call(shlex.split(" ".join(sys.argv[1:])))

# prevent docker exit
subprocess.call(["tail", "-f", "/dev/null"])
