#!/usr/bin/env python3
"""A stand-in for the `trailkeep` binary, for developing the web UI and its browser tests
while the real server is not ready.  Never used unless TRAILKEEP_BIN points at it.

It implements only what the UI and tests/browser/ use, following /work/shared/spec:
  trailkeep serve --listen HOST:PORT --data-dir DIR
  trailkeep keys create --name N --scope S [--scope S] [--workspace W ...] --data-dir DIR
and the routes /pangea/v1/log, /pangea/v2/log, /pangea/v1/search, /pangea/v1/results,
/pangea/v1/download_results, /download/<token>/<name>, POST /v1/events (H2O), /api/v1/whoami,
/api/v1/public-key, /api/v1/roots/<size>, /api/v1/tail (SSE), /api/v1/export, and web/ at /.
Storage is SQLite (trailkeep.db, table events(seq, envelope, hash, ...)); every ingest request
seals one buffer per workspace and signs the new cold-tree root with Ed25519.
"""
import base64, csv, datetime as dt, gzip, hashlib, io, json, mimetypes, os, queue, re, secrets
import signal, sqlite3, sys, threading, urllib.parse, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEB_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'web'))
CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

# ---------------------------------------------------------------- Ed25519 (RFC 8032) ----
try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization

    def ed_public(seed):
        return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def ed_sign(seed, msg):
        return Ed25519PrivateKey.from_private_bytes(seed).sign(msg)
except ImportError:  # pure-Python fallback (slow but fine for tests)
    _p = 2**255 - 19
    _q = 2**252 + 27742317777372353535851937790883648493
    _d = -121665 * pow(121666, _p - 2, _p) % _p
    _I = pow(2, (_p - 1) // 4, _p)

    def _xrecover(y):
        xx = (y * y - 1) * pow(_d * y * y + 1, _p - 2, _p)
        x = pow(xx, (_p + 3) // 8, _p)
        if (x * x - xx) % _p: x = x * _I % _p
        return _p - x if x % 2 else x
    _By = 4 * pow(5, _p - 2, _p) % _p
    _B = (_xrecover(_By), _By, 1, _xrecover(_By) * _By % _p)

    def _add(P, Q):
        A = (P[1] - P[0]) * (Q[1] - Q[0]) % _p; B = (P[1] + P[0]) * (Q[1] + Q[0]) % _p
        C = 2 * P[3] * Q[3] * _d % _p; D = 2 * P[2] * Q[2] % _p
        E, F, G, H = B - A, D - C, D + C, B + A
        return (E * F % _p, G * H % _p, F * G % _p, E * H % _p)

    def _mul(s, P):
        Q = (0, 1, 1, 0)
        while s:
            if s & 1: Q = _add(Q, P)
            P = _add(P, P); s >>= 1
        return Q

    def _enc(P):
        zi = pow(P[2], _p - 2, _p); x = P[0] * zi % _p; y = P[1] * zi % _p
        return (y | ((x & 1) << 255)).to_bytes(32, 'little')

    def _expand(seed):
        h = hashlib.sha512(seed).digest()
        a = int.from_bytes(h[:32], 'little'); a &= (1 << 254) - 8; a |= 1 << 254
        return a, h[32:]

    def ed_public(seed):
        return _enc(_mul(_expand(seed)[0], _B))

    def ed_sign(seed, msg):
        a, prefix = _expand(seed); A = _enc(_mul(a, _B))
        r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), 'little') % _q
        R = _enc(_mul(r, _B))
        k = int.from_bytes(hashlib.sha512(R + A + msg).digest(), 'little') % _q
        return R + ((r + k * a) % _q).to_bytes(32, 'little')

# ---------------------------------------------------------------- helpers ----
def canon(obj):
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(',', ':'), sort_keys=True)

def sha(b):
    return hashlib.sha256(b).digest()

def now_str(t=None):
    return (t or dt.datetime.now(dt.timezone.utc)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')

_DUR = re.compile(r'^(\d+)(d|da|day|days|h|hour|hr|hrs|hours|mi|min|mins|minute|minutes|mo|mon|month|months|s|sec|secs|second|seconds|w|week|weeks|y|year|years)$')
_UNITS = {'d': 86400, 'h': 3600, 'mi': 60, 'mo': 30 * 86400, 's': 1, 'w': 7 * 86400, 'y': 365 * 86400}

def parse_time(s):
    """RFC 3339 (naive = UTC) or a duration before now; returns aware datetime or raises."""
    m = _DUR.match(s)
    if m:
        u = m.group(2)
        key = 'mo' if u.startswith('mo') else 'mi' if u.startswith('mi') else u[0]
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=int(m.group(1)) * _UNITS[key])
    m = re.match(r'^(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?(Z|[+-]\d{1,2}(?::?\d{1,2})?)?$', s)
    if not m: raise ValueError('bad time')
    frac = int((m.group(7) or '0').ljust(6, '0'))
    tz = dt.timezone.utc
    off = m.group(8)
    if off and off != 'Z':
        sign = -1 if off[0] == '-' else 1
        hh, _, mm = off[1:].partition(':')
        if not mm and len(hh) > 2: hh, mm = hh[:2], hh[2:]
        tz = dt.timezone(sign * dt.timedelta(hours=int(hh), minutes=int(mm or 0)))
    return dt.datetime(*(int(m.group(k)) for k in range(1, 7)), frac, tzinfo=tz)

# ---------------------------------------------------------------- query language (§7.2) ----
FIELDS = {'message', 'actor', 'action', 'target', 'source', 'status', 'tenant_id', 'timestamp', 'new', 'old', 'received_at'}

class QueryError(Exception):
    pass

def parse_query(text):
    toks = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace(): i += 1; continue
        if c in '()': toks.append((c, c)); i += 1; continue
        neg = False
        if c == '-' and i + 1 < n and not text[i + 1].isspace():
            neg = True; i += 1
        m = re.compile(r'([a-z_][a-z0-9_]*)(>=|<=|:|=|>|<)').match(text, i)
        field = op = None
        if m:
            field, op = m.group(1), m.group(2); i = m.end()
        if i < n and text[i] == '"':
            i += 1; val = ''
            while True:
                if i >= n: raise QueryError('syntax error at end of query')
                if text[i] == '\\' and i + 1 < n and text[i + 1] in '"\\': val += text[i + 1]; i += 2; continue
                if text[i] == '"': i += 1; break
                val += text[i]; i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '"()': j += 1
            val = text[i:j]; i = j
            if not val and field is None: raise QueryError(f'syntax error at {text[i:i+1]!r}')
            if field is None and not neg and val in ('AND', 'OR'):
                toks.append((val, val)); continue
        if field is not None and field not in FIELDS: raise QueryError(f"unknown field '{field}'")
        if op in ('>', '<', '>=', '<=') and field not in ('timestamp', 'received_at'):
            raise QueryError(f'syntax error at {op}')
        toks.append(('TERM', (neg, field, op, val)))
    pos = [0]

    def peek(): return toks[pos[0]][0] if pos[0] < len(toks) else None

    def or_expr():
        parts = [and_expr()]
        while peek() == 'OR': pos[0] += 1; parts.append(and_expr())
        return ('or', parts)

    def and_expr():
        parts = [primary()]
        while peek() not in (None, 'OR', ')'):
            if peek() == 'AND': pos[0] += 1
            parts.append(primary())
        return ('and', parts)

    def primary():
        t = peek()
        if t == '(':
            pos[0] += 1; e = or_expr()
            if peek() != ')': raise QueryError('syntax error: missing )')
            pos[0] += 1; return e
        if t == 'TERM':
            pos[0] += 1; return ('term', toks[pos[0] - 1][1])
        raise QueryError(f'syntax error at {t!r}')
    if not toks: return ('and', [])
    e = or_expr()
    if pos[0] != len(toks): raise QueryError(f'syntax error at {toks[pos[0]][0]!r}')
    return e

def _strings(v):
    if isinstance(v, str): yield v
    elif isinstance(v, dict):
        for x in v.values(): yield from _strings(x)
    elif isinstance(v, list):
        for x in v: yield from _strings(x)

def eval_query(q, env):
    kind = q[0]
    if kind == 'or': return any(eval_query(x, env) for x in q[1])
    if kind == 'and': return all(eval_query(x, env) for x in q[1])
    neg, field, op, val = q[1]
    ev = env['event']
    if field is None:
        r = any(val in s for s in _strings(ev))
    else:
        v = env.get('received_at') if field == 'received_at' else ev.get(field)
        if v is None: r = False
        elif op == ':': r = val in str(v)
        elif op == '=': r = str(v) == val
        else:
            try: a, b = parse_time(str(v)), parse_time(val)
            except ValueError: r = False
            else: r = {'>': a > b, '<': a < b, '>=': a >= b, '<=': a <= b}[op]
    return not r if neg else r

# ---------------------------------------------------------------- Merkle ----
def lp2(n):
    k = 1
    while k * 2 < n: k *= 2
    return k

class Tree:
    def __init__(self): self.leaves, self.memo = [], {}
    def mth(self, s, e):
        if e - s == 1: return self.leaves[s]
        key = (s, e)
        if key not in self.memo:
            k = lp2(e - s); self.memo[key] = sha(self.mth(s, s + k) + self.mth(s + k, e))
        return self.memo[key]
    def path(self, i, s, e):
        out = []
        while e - s > 1:
            k = lp2(e - s)
            if i < s + k: out.append(('r', self.mth(s + k, e))); e = s + k
            else: out.append(('l', self.mth(s, s + k))); s = s + k
        return out[::-1]

def enc_proof(items):
    return ','.join(f'{side}:{h.hex()}' for side, h in items)

# ---------------------------------------------------------------- state ----
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys(id TEXT PRIMARY KEY, name TEXT, secret TEXT UNIQUE, scopes TEXT, workspaces TEXT);
CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, envelope TEXT NOT NULL, hash TEXT NOT NULL,
  workspace TEXT NOT NULL, buffer INTEGER NOT NULL, pos INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS roots(size INTEGER PRIMARY KEY, buffer_root TEXT, root_hash TEXT, published_at TEXT,
  signature TEXT, signed_message TEXT);
"""

def open_db(data_dir):
    os.makedirs(data_dir, exist_ok=True)
    db = sqlite3.connect(os.path.join(data_dir, 'trailkeep.db'), timeout=10, check_same_thread=False,
                         isolation_level=None)
    db.executescript(SCHEMA)
    return db

def create_key(db, name, scopes, workspaces):
    kid = secrets.token_hex(6)
    secret = f'tk_{kid}_{secrets.token_urlsafe(24)}'
    db.execute('INSERT INTO keys VALUES(?,?,?,?,?)', (kid, name, secret, json.dumps(scopes), json.dumps(workspaces)))
    return secret

class State:
    def __init__(self, data_dir):
        self.db = open_db(data_dir)
        self.lock = threading.RLock()
        row = self.db.execute("SELECT v FROM meta WHERE k='seed'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES('seed',?),('tree_name',?)", (secrets.token_hex(32), secrets.token_hex(32)))
        self.seed = bytes.fromhex(self.db.execute("SELECT v FROM meta WHERE k='seed'").fetchone()[0])
        self.tree_name = self.db.execute("SELECT v FROM meta WHERE k='tree_name'").fetchone()[0]
        self.public_key = ed_public(self.seed)
        self.cold = Tree()
        self.buffers = {}  # buffer idx -> Tree
        for (br,) in self.db.execute('SELECT buffer_root FROM roots ORDER BY size'):
            self.cold.leaves.append(bytes.fromhex(br))
        for b, h in self.db.execute('SELECT buffer, hash FROM events ORDER BY seq'):
            self.buffers.setdefault(b, Tree()).leaves.append(bytes.fromhex(h))
        self.searches, self.downloads, self.subscribers = {}, {}, []
        self.last_received = None

    def key(self, secret):
        row = self.db.execute('SELECT id,name,scopes,workspaces FROM keys WHERE secret=?', (secret,)).fetchone()
        if not row: return None
        return {'key_id': row[0], 'name': row[1], 'scopes': json.loads(row[2]), 'workspaces': json.loads(row[3])}

    def received_at(self):
        t = dt.datetime.now(dt.timezone.utc)
        if self.last_received and t <= self.last_received: t = self.last_received + dt.timedelta(microseconds=1)
        self.last_received = t
        return now_str(t)

    def root(self, size):
        row = self.db.execute('SELECT root_hash, published_at, signature, signed_message FROM roots WHERE size=?', (size,)).fetchone()
        return row and {'tree_name': self.tree_name, 'size': size, 'root_hash': row[0], 'published_at': row[1],
                        'signature': row[2], 'signed_message': row[3]}

    def append(self, items):
        """items: list of (event dict, workspace, extra envelope keys). Returns SearchEvents."""
        with self.lock:
            self.db.execute('BEGIN IMMEDIATE')
            groups = {}
            for ev, ws, extra in items: groups.setdefault(ws, []).append((ev, extra))
            out = []
            for ws, evs in groups.items():
                b = len(self.cold.leaves)
                tree = Tree()
                rows = []
                for pos, (ev, extra) in enumerate(evs):
                    env = {'event': ev, 'received_at': self.received_at(), **extra}
                    h = sha(canon(env).encode())
                    tree.leaves.append(h)
                    rows.append((canon(env), h.hex(), ws, b, pos))
                self.db.executemany('INSERT INTO events(envelope,hash,workspace,buffer,pos) VALUES(?,?,?,?,?)', rows)
                self.buffers[b] = tree
                br = tree.mth(0, len(tree.leaves))
                self.cold.leaves.append(br)
                size = b + 1
                rh = self.cold.mth(0, size).hex()
                pub = now_str()
                msg = canon({'published_at': pub, 'root_hash': rh, 'size': size, 'tree_name': self.tree_name})
                sig = base64.b64encode(ed_sign(self.seed, msg.encode())).decode()
                self.db.execute('INSERT INTO roots VALUES(?,?,?,?,?,?)', (size, br.hex(), rh, pub, sig, msg))
                for r in rows:
                    out.append((ws, self.search_event(r[0], r[1], b, r[4], size)))
            self.db.execute('COMMIT')
        for ws, se in out:
            for sub in list(self.subscribers):
                if sub.matches(ws, se): sub.q.put(se)
        return [se for _, se in out]

    def search_event(self, envelope_text, h, b, pos, size):
        tree = self.buffers[b]
        proof = tree.path(pos, 0, len(tree.leaves)) + self.cold.path(b, 0, size)
        return {'envelope': json.loads(envelope_text), 'hash': h, 'published': True, 'leaf_index': b,
                'membership_proof': enc_proof(proof)}

    def query_rows(self, key, q, start, end, restriction=None, order='desc', order_by='received_at', limit=None):
        sql = 'SELECT seq, envelope, hash, workspace, buffer, pos FROM events'
        res = []
        for seq, envtext, h, ws, b, pos in self.db.execute(sql):
            if key['workspaces'] and ws not in key['workspaces']: continue
            try: env = json.loads(envtext)
            except ValueError: env = {'event': {}, 'received_at': ''}
            ra = env.get('received_at', '')
            try:
                t = parse_time(ra)
                if start and t < start: continue
                if end and t > end: continue
            except ValueError: pass
            if restriction and any(vals and str(env['event'].get(k)) not in vals for k, vals in restriction.items()): continue
            if q and not eval_query(q, env): continue
            res.append((seq, envtext, h, b, pos, env))
        keyf = (lambda r: (r[5].get('received_at', ''), r[0])) if order_by == 'received_at' else \
               (lambda r: (str(r[5]['event'].get(order_by, '')), r[0]))
        res.sort(key=keyf, reverse=(order == 'desc'))
        return res[:limit] if limit else res

class Subscriber:
    def __init__(self, key, q):
        self.key, self.query, self.q = key, q, queue.Queue()
    def matches(self, ws, se):
        if self.key['workspaces'] and ws not in self.key['workspaces']: return False
        return eval_query(self.query, se['envelope']) if self.query else True

# ---------------------------------------------------------------- HTTP ----
STATE = None

def envelope(status, summary, result):
    t = dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'
    return {'request_id': 'prq_' + secrets.token_hex(16), 'request_time': t, 'response_time': t,
            'status': status, 'summary': summary, 'result': result}

class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        if os.environ.get('TRAILKEEP_MOCK_LOG'): sys.stderr.write('mock: ' + fmt % args + '\n')

    def send(self, code, body, ctype='application/json', headers=None):
        if isinstance(body, (dict, list)): body = json.dumps(body).encode()
        elif isinstance(body, str): body = body.encode()
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.send_header('Referrer-Policy', 'no-referrer')
        for k, v in (headers or {}).items(): self.send_header(k, v)
        self.end_headers()
        if self.command != 'HEAD': self.wfile.write(body)

    def pangea_err(self, code, status, summary, errors=None):
        self.send(code, envelope(status, summary, {'errors': errors} if errors else None))

    def api_err(self, code, title, detail=''):
        self.send(code, {'title': title, 'status': code, 'detail': detail, 'code': title.lower().replace(' ', '_')},
                  'application/problem+json')

    def auth(self, scope, pangea):
        h = self.headers.get('Authorization', '')
        key = STATE.key(h[7:]) if h.startswith('Bearer ') else None
        if key is None:
            (self.pangea_err(401, 'Unauthorized', 'Not authorized to access this resource') if pangea
             else self.api_err(401, 'Unauthorized', 'missing or invalid API key'))
            return None
        if scope and scope not in key['scopes'] and 'admin' not in key['scopes']:
            (self.pangea_err(403, 'Unauthorized', 'Not authorized to access this resource') if pangea
             else self.api_err(403, 'Forbidden', f'the key lacks the {scope} scope'))
            return None
        return key

    def body(self):
        n = int(self.headers.get('Content-Length') or 0)
        try: return json.loads(self.rfile.read(n) or b'{}')
        except ValueError: return None

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        qs = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        p = u.path
        if p == '/api/v1/whoami':
            key = self.auth(None, False)
            if key: self.send(200, key)
        elif p == '/api/v1/public-key':
            if self.auth(None, False):
                self.send(200, {'algorithm': 'ED25519', 'public_key': base64.b64encode(STATE.public_key).decode(),
                                'tree_name': STATE.tree_name})
        elif p.startswith('/api/v1/roots/'):
            if self.auth(None, False):
                try: r = STATE.root(int(p.rsplit('/', 1)[1]))
                except ValueError: r = None
                self.send(200, r) if r else self.api_err(404, 'Not Found', 'no such root')
        elif p == '/api/v1/tail':
            self.tail(qs)
        elif p == '/api/v1/export':
            self.export(qs)
        elif p.startswith('/download/'):
            d = STATE.downloads.get(p.split('/')[2])
            self.send(200, d[1], 'application/gzip') if d else self.send(404, 'not found', 'text/plain')
        elif p.startswith('/api/') or p.startswith('/pangea/') or p.startswith('/v1/'):
            self.api_err(404, 'Not Found')
        else:
            self.static(p)

    do_HEAD = do_GET

    def static(self, p):
        rel = p.lstrip('/') or 'index.html'
        full = os.path.abspath(os.path.join(WEB_DIR, rel))
        if not full.startswith(WEB_DIR + os.sep) or not os.path.isfile(full):
            full = os.path.join(WEB_DIR, 'index.html')
        with open(full, 'rb') as f: data = f.read()
        ctype = mimetypes.guess_type(full)[0] or 'application/octet-stream'
        if full.endswith('.js'): ctype = 'text/javascript'
        self.send(200, data, ctype + ('; charset=utf-8' if ctype.startswith('text/') else ''),
                  {'Content-Security-Policy': CSP, 'Cache-Control': 'no-cache'})

    def parse_search(self, b):
        errs = []
        try: q = parse_query(b.get('query', '') or '')
        except QueryError as e: q = None; errs.append({'code': 'BadFormat', 'detail': str(e), 'source': '/query'})
        times = {}
        for k in ('start', 'end'):
            v = b.get(k)
            try: times[k] = parse_time(v) if v else (parse_time('14d') if k == 'start' else None)
            except ValueError: errs.append({'code': 'BadFormatDateTime', 'detail': f'bad {k}', 'source': f'/{k}'})
        return q, times.get('start'), times.get('end'), errs

    def do_POST(self):
        p = urllib.parse.urlsplit(self.path).path
        b = self.body()
        if b is None: return self.pangea_err(400, 'ValidationError', 'bad JSON', [{'code': 'BadFormat', 'detail': 'bad JSON', 'source': '/'}])
        if p in ('/pangea/v1/log', '/pangea/v2/log'):
            key = self.auth('ingest', True)
            if not key: return
            items = [b] if p.endswith('v1/log') else b.get('events', [])
            todo = []
            for it in items:
                ev = it.get('event') or {}
                if not isinstance(ev.get('message'), (str, dict)):
                    return self.pangea_err(400, 'ValidationError', 'There was 1 error(s) in the given payload.',
                                           [{'code': 'FieldRequired', 'detail': "'message' is a required property", 'source': '/event/message'}])
                for k in ('message', 'new', 'old'):
                    if isinstance(ev.get(k), dict): ev[k] = canon(ev[k])
                ws = ev.get('tenant_id', '')
                if key['workspaces'] and ws not in key['workspaces']:
                    return self.pangea_err(403, 'Unauthorized', 'Not authorized to access this resource')
                extra = {k: it[k] for k in ('signature', 'public_key') if it.get(k)}
                todo.append((ev, ws, extra))
            res = STATE.append(todo)
            out = [{'hash': r['hash'], 'envelope': r['envelope']} for r in res]
            self.send(200, envelope('Success', f'Logged {len(out)} record(s)', out[0] if p.endswith('v1/log') else {'results': out}))
        elif p == '/v1/events':
            key = self.auth('ingest', False)
            if not key: return
            eid = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)).get('eventId') or str(uuid.uuid4())
            m = re.search(r'(?:^|/)workspaces/([^/]+)', b.get('resource', '') or '')
            ws = b.get('workspaceOverride') if b.get('workspaceOverride') is not None else (f'workspaces/{m.group(1)}' if m else '')
            if key['workspaces'] and ws not in key['workspaces']: return self.api_err(403, 'Forbidden')
            meta = b.get('metadata') or {}
            st = b.get('status') or {}
            ev = {'message': meta.get('message', b.get('action', '')), 'actor': b.get('principal', ''),
                  'action': b.get('action', '')[:32], 'target': b.get('resource', ''), 'source': b.get('sourceIpAddress', ''),
                  'status': str(st.get('code', '')), 'tenant_id': ws, 'timestamp': b.get('eventTime', ''),
                  'event_id': eid, 'event_source': b.get('eventSource', ''), 'metadata': meta,
                  'request_parameters': b.get('requestParameters') or {}, 'read_only': bool(b.get('readOnly')),
                  'type': b.get('type', 'TYPE_UNSPECIFIED'), 'user_agent': b.get('userAgent', ''),
                  'status_message': st.get('message', '')}
            STATE.append([(ev, ws, {})])
            self.send(200, {'event': {**b, 'name': f'events/{eid}', 'workspace': ws}})
        elif p == '/pangea/v1/search':
            key = self.auth('search', True)
            if not key: return
            q, start, end, errs = self.parse_search(b)
            if errs: return self.pangea_err(400, 'ValidationError', f'There was {len(errs)} error(s) in the given payload.', errs)
            maxr = int(b.get('max_results') or 10000)
            rows = STATE.query_rows(key, q, start, end, b.get('search_restriction'), b.get('order', 'desc'),
                                    b.get('order_by', 'received_at'), maxr)
            sid = 'pas_' + secrets.token_hex(16)
            with STATE.lock: size = len(STATE.cold.leaves)
            STATE.searches[sid] = {'rows': rows, 'size': size, 'key': key['key_id']}
            self.results_page(sid, int(b.get('limit') or 20), 0, True)
        elif p == '/pangea/v1/results':
            key = self.auth('search', True)
            if not key: return
            s = STATE.searches.get(b.get('id'))
            if not s or s['key'] != key['key_id']: return self.pangea_err(404, 'NotFound', 'Resource not found')
            off = int(b.get('offset') or 0)
            if off > len(s['rows']): return self.pangea_err(400, 'BadOffset', 'Offset is beyond the result set')
            self.results_page(b['id'], int(b.get('limit') or 20), off, False)
        elif p == '/pangea/v1/download_results':
            key = self.auth('search', True)
            if not key: return
            s = STATE.searches.get(b.get('result_id'))
            if not s: return self.pangea_err(404, 'NotFound', 'Resource not found')
            fmt = b.get('format', 'csv')
            data = gzip.compress(render_export([self.se(s, r) for r in s['rows']], 'csv' if fmt == 'csv' else 'jsonl', s['size']))
            tok = secrets.token_hex(16)
            STATE.downloads[tok] = (fmt, data)
            host = self.headers.get('Host')
            self.send(200, envelope('Success', 'Download ready', {'dest_url': f'http://{host}/download/{tok}/search.{fmt}.gz',
                                                                  'expires_at': now_str(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=24))}))
        else:
            self.api_err(404, 'Not Found')

    def se(self, s, r):
        seq, envtext, h, b, pos, env = r
        return STATE.search_event(envtext, h, b, pos, s['size'])

    def results_page(self, sid, limit, off, first):
        s = STATE.searches[sid]
        root = STATE.root(s['size'])
        res = {'count': len(s['rows']), 'events': [self.se(s, r) for r in s['rows'][off:off + limit]]}
        if first:
            res['id'] = sid
            res['expires_at'] = now_str(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=48))
        if root:
            res['root'] = {k: root[k] for k in ('tree_name', 'size', 'root_hash', 'published_at')}
            res['root']['url'] = f"urn:audit-root:{root['tree_name']}:{root['size']}"
            res['unpublished_root'] = {k: root[k] for k in ('tree_name', 'size', 'root_hash')}
        self.send(200, envelope('Success', f"Found {res['count']} event(s)", res))

    def tail(self, qs):
        key = self.auth('search', False)
        if not key: return
        try: q = parse_query(qs.get('query', ''))
        except QueryError as e: return self.api_err(400, 'Invalid Query', str(e))
        sub = Subscriber(key, q)
        STATE.subscribers.append(sub)
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Cache-Control', 'no-cache')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(b': connected\n\n'); self.wfile.flush()
            while True:
                try:
                    se = sub.q.get(timeout=10)
                    self.wfile.write(('data: ' + json.dumps(se) + '\n\n').encode())
                except queue.Empty:
                    self.wfile.write(b': keep-alive\n\n')
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            STATE.subscribers.remove(sub)

    def export(self, qs):
        key = self.auth('search', False)
        if not key: return
        try:
            q = parse_query(qs.get('query', ''))
            start = parse_time(qs['start']) if qs.get('start') else None
            end = parse_time(qs['end']) if qs.get('end') else None
        except (QueryError, ValueError) as e: return self.api_err(400, 'Invalid Query', str(e))
        fmt = qs.get('format', 'csv')
        if fmt not in ('csv', 'json', 'jsonl.gz'): return self.api_err(400, 'Invalid Format')
        with STATE.lock: size = len(STATE.cold.leaves)
        rows = STATE.query_rows(key, q, start, end)
        s = {'size': size}
        evs = [self.se(s, r) for r in rows]
        data = render_export(evs, 'jsonl' if fmt == 'jsonl.gz' else fmt, size)
        ctype = {'csv': 'text/csv; charset=utf-8', 'json': 'application/json'}.get(fmt, 'application/gzip')
        if fmt == 'jsonl.gz': data = gzip.compress(data)
        self.send(200, data, ctype, {'Content-Disposition': f'attachment; filename="trailkeep-export.{fmt}"'})

CSV_COLS = ['received_at', 'hash', 'published', 'leaf_index', 'membership_proof', 'tree_size', 'timestamp', 'actor',
            'action', 'status', 'source', 'target', 'tenant_id', 'message', 'new', 'old', 'signature', 'public_key']

def render_export(evs, fmt, size):
    if fmt == 'json':
        return json.dumps(evs, ensure_ascii=False).encode()
    if fmt == 'jsonl':
        return ''.join(json.dumps({**e, 'tree_size': size}, ensure_ascii=False) + '\n' for e in evs).encode()
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLS)
    for e in evs:
        env, ev = e['envelope'], e['envelope']['event']
        vals = {**ev, **e, 'received_at': env.get('received_at'), 'tree_size': size,
                'signature': env.get('signature', ''), 'public_key': env.get('public_key', '')}
        row = []
        for c in CSV_COLS:
            v = vals.get(c, '')
            v = '' if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            if v[:1] in ('=', '+', '-', '@', '\t', '\r'): v = "'" + v
            row.append(v)
        w.writerow(row)
    return out.getvalue().encode()

# ---------------------------------------------------------------- CLI ----
def arg(argv, name, default=None, many=False):
    vals = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
    return vals if many else (vals[-1] if vals else default)

def main(argv):
    global STATE
    data_dir = arg(argv, '--data-dir', os.environ.get('TRAILKEEP_DATA_DIR', './trailkeep-data'))
    if argv[:2] == ['keys', 'create']:
        db = open_db(data_dir)
        secret = create_key(db, arg(argv, '--name', 'key'), arg(argv, '--scope', many=True) or ['search'],
                            arg(argv, '--workspace', many=True))
        print('created key'); print(secret); return 0
    if argv[:1] != ['serve']:
        print('usage: trailkeep-mock serve --listen HOST:PORT --data-dir DIR | keys create ...', file=sys.stderr); return 2
    STATE = State(data_dir)
    host, _, port = arg(argv, '--listen', '127.0.0.1:8080').rpartition(':')
    if STATE.db.execute('SELECT count(*) FROM keys').fetchone()[0] == 0:
        print(f"admin key: {create_key(STATE.db, 'admin', ['admin'], [])}", flush=True)
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    srv.daemon_threads = True
    print(f'listening on http://{host}:{srv.server_address[1]}', flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever()
    return 0

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
