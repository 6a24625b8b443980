"""The local console: a small web page served by the local AWS at http://127.0.0.1:<local.port>/_console,
showing the stack as the AWS console would (docs/console.md).

    guard.py       who may call it: a loopback Host, its own Origin (403 JSON otherwise)
    responses.py   the WSGI app: the page's files and its JSON API under /_console/api
    data.py        what it shows, read from the local AWS's own APIs and the SNS outbox
    charts.py      CloudWatch: metric series of the last hour, alarm thresholds and history
    exceptions.py  its errors, each a status and a JSON message
    static/        index.html, console.js, console.css: no build step, no external asset
    screenshots.py python -m crudstack.local.console.screenshots: the pictures in README and docs/console.md
"""
