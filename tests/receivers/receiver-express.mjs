// A ClockEye webhook receiver in Express. It verifies X-ClockEye-Signature over the raw body
// before parsing it. Run: npm install express; CLOCKEYE_SECRET=whsec_… node receiver-express.mjs [PORT]
import crypto from 'node:crypto';
import express from 'express';

const secret = process.env.CLOCKEYE_SECRET;
const port = Number(process.argv[2] ?? 9000);

function verify(body, header) {
  const expected = 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
  const given = Buffer.from(header ?? '');
  // timingSafeEqual throws when the lengths differ, so compare them first.
  return given.length === expected.length && crypto.timingSafeEqual(given, Buffer.from(expected));
}

const app = express();

// express.raw keeps the body as the exact bytes (a Buffer), which the signature covers.
// Its default limit is 100 kB, but events are up to 256 KiB: with the default, Express answers
// 413 to a larger event and every attempt of it fails. 512kb leaves room.
app.post('/webhooks/clockeye', express.raw({ type: 'application/json', limit: '512kb' }), (req, res) => {
  if (!Buffer.isBuffer(req.body) || !verify(req.body, req.get('X-ClockEye-Signature'))) {
    console.log('rejected: invalid signature');
    res.status(401).send('invalid signature');
    return;
  }
  const event = JSON.parse(req.body);
  // Handle event.type here; deduplicate on event.id (delivery is at least once).
  console.log(`verified ${event.id} ${event.type}`);
  res.status(200).send('ok');
});

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
