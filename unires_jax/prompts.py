"""The UniRes task prompts (paper, Sec. 3): one text prompt per restoration task.

Training (the data pipeline's task ids) and inference (the experts) must use the very same
strings, so both read them from here.
"""

TASK_PROMPTS: dict[str, str] = {
    "sr": "Super-resolution",
    "motion": "Motion-deblur",
    "defocus": "Defocus-deblur",
    "denoise": "Denoise",
}
