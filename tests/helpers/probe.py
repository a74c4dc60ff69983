"""Waiting for a gateway process to become ready: for deploy scripts, tests and benchmarks."""

from __future__ import annotations

import asyncio
import subprocess

import aiohttp


async def wait_until_ready(base_url: str, process: subprocess.Popen, limit: float) -> None:
    """Poll `/readyz` until it answers 200; raise if the process exits or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the process exited with {process.returncode} before it was ready")
            try:
                async with session.get(f"{base_url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{base_url} was not ready within {limit:.0f} s")
