// The benchmark's Node.js server, written the way Node's documentation
// shows: its socket from LISTEN_FDS at fd 3 (as systemd or baton run
// hand it over), server.close() on SIGTERM (which closes idle keep-alive
// connections at once, then waits for the busy ones). It does not speak
// sd_notify: run it with `baton run --ready exec`.
'use strict';
const http = require('http');

if (process.env.LISTEN_PID !== String(process.pid) || process.env.LISTEN_FDS !== '1') {
  console.error('node server: want one socket from LISTEN_FDS at fd 3');
  process.exit(1);
}
const server = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (chunk) => { n += chunk.length; });
  req.on('end', () => {
    res.setHeader('X-Pid', String(process.pid));
    res.end(`pid ${process.pid} body ${n}\n`);
  });
});
server.listen({ fd: 3 });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
