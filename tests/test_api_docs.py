"""/docs works offline: Swagger UI and its assets come from the installed package."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from service.db import make_engine
from service.settings import Settings


def test_docs_reference_no_external_host_and_their_assets_answer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'docs.db'}")
    app = create_app(Settings(database_url=str(engine.url)), engine)
    with TestClient(app) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert not re.search(r"(src|href)=['\"]?(https?:)?//", page.text), page.text
        assert "http://" not in page.text and "https://" not in page.text
        urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        assets = [u for u in urls if u.endswith((".js", ".css"))]
        assert len(assets) == 2, urls
        for url in assets + re.findall(r"url: '([^']+)'", page.text):
            assert client.get(url).status_code == 200, url
        assert client.get("/docs/oauth2-redirect").status_code == 200
        # The dashboard keeps its strict policy: nothing from elsewhere.
        policy = client.get("/").headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self';" in policy
    engine.dispose()
