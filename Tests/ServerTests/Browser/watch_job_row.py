"""Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe, standard library only)
to watch the status page's jobs table while a job trains: opens the page, waits until its jobs
stream (GET /v1/events) is open, submits the spec, then samples the job's row until it has
succeeded. Prints {"job": id, "samples": [...]} as JSON and saves a screenshot.

usage: watch_job_row.py CHROMIUM BASE_URL SPEC_FILE SCREENSHOT_PNG TIMEOUT_SECONDS
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request


class DevTools:
    """One Chromium process and its DevTools pipe: fd 3 reads commands, fd 4 writes replies, NUL-separated."""

    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="descent-cdp-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def wire_pipe():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={self.profile}", "--window-size=1300,1600", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire_pipe, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def read(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def wait_until(deadline, what, check):
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    chromium, base, spec_file, screenshot, timeout = sys.argv[1:6]
    deadline = time.time() + float(timeout)
    browser = DevTools(chromium)
    try:
        browser.open(base + "/")
        wait_until(deadline, "the jobs stream to open",
                   lambda: browser.evaluate("document.getElementById('jobs-body')?.dataset.stream === 'open'"))
        with open(spec_file, "rb") as file:
            request = urllib.request.Request(base + "/v1/jobs", data=file.read(), headers={"Content-Type": "application/json"})
        job = json.load(urllib.request.urlopen(request, timeout=30))["id"]
        row = f"""(() => {{
            const body = document.getElementById('jobs-body');
            const row = body.querySelector('tr[data-id="{job}"]');
            if (!row) return {{ row: false, events: Number(body.dataset.streamEvents), stream: body.dataset.stream }};
            const bar = row.querySelector('[role=progressbar]');
            return {{ row: true, status: row.querySelector('.col-status').textContent.trim(),
                     progress: Number(bar.getAttribute('aria-valuenow')), label: row.querySelector('.progress .label').textContent,
                     events: Number(body.dataset.streamEvents), stream: body.dataset.stream }};
        }})()"""
        samples = []
        while time.time() < deadline:
            sample = browser.evaluate(row)
            if not samples or sample != samples[-1]:
                samples.append(sample)
            if sample and sample.get("status") == "succeeded":
                break
            time.sleep(0.05)
        browser.screenshot(screenshot)
        print(json.dumps({"job": job, "samples": samples}))
    finally:
        browser.close()


if __name__ == "__main__":
    main()
