"""The smallest orchlite flow: two tasks, a parameter, a log line.

Run it with `orch run examples/hello.py:hello -p name=Ada`, or as a plain script with
`python examples/hello.py`; either way the run is recorded in the nearest `.orch/`.
"""

from orchlite import flow, get_run_logger, task


@task
def greet(name: str) -> str:
    return f"Hello, {name}!"


@task
def shout(text: str) -> str:
    return text.upper()


@flow(log_prints=True)
def hello(name: str = "world") -> str:
    message = shout(greet(name))
    get_run_logger().info("greeted %s", name)
    print(message)
    return message


if __name__ == "__main__":
    hello()
