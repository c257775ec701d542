// A ClockEye webhook receiver in Node.js, no dependencies. It verifies X-ClockEye-Signature
// over the raw body before parsing it. Run: CLOCKEYE_SECRET=whsec_… node receiver.mjs [PORT]
import crypto from 'node:crypto';
import http from 'node:http';

const secret = process.env.CLOCKEYE_SECRET;
const port = Number(process.argv[2] ?? 9000);

function verify(body, header) {
  const expected = 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
  const given = Buffer.from(header ?? '');
  // timingSafeEqual throws when the lengths differ, so compare them first.
  return given.length === expected.length && crypto.timingSafeEqual(given, Buffer.from(expected));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > 1024 * 1024) req.destroy(); // far above the largest event
    else chunks.push(chunk);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks); // the raw bytes: verify these, not re-serialized JSON
    if (!verify(body, req.headers['x-clockeye-signature'])) {
      console.log('rejected: invalid signature');
      res.writeHead(401).end('invalid signature');
      return;
    }
    const event = JSON.parse(body);
    // Handle event.type here; deduplicate on event.id (delivery is at least once).
    console.log(`verified ${event.id} ${event.type}`);
    res.writeHead(200).end('ok');
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
