"""A task written with the Flyte 2 SDK, as the docs run it with copilot:

    copilot run examples/tasks.py:summarize -i n=2 -i reads=examples/data/lane1/reads.fastq.gz
    copilot task export examples/tasks.py:summarize
"""

from flyte.extras import ContainerTask
from flyte.io import File

summarize = ContainerTask(
    name="summarize",
    image="alpine:3.18",
    inputs={"n": int, "reads": File},
    outputs={"records": int, "head": File},
    command=[
        "/bin/sh",
        "-c",
        "echo $(( $(wc -l < /var/inputs/reads) / 4 )) > /var/outputs/records"
        " && head -n {{.inputs.n}} /var/inputs/reads > /var/outputs/head",
    ],
)
