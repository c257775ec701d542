// A receiver built from the customer-facing reference, verbatim where it shows code:
// `verifyWebhookSignature` (types stripped) and the Express handler's logic, on node's own
// `http` (the seed's `express.raw` gives the raw body as a Buffer; so does this). It also checks
// the Standard Webhooks `webhook-signature`. Usage: node seed-receiver.mjs SECRET_FILE
// Prints "listening PORT", then one JSON line per request.
import crypto from 'crypto';
import fs from 'fs';
import http from 'http';

function verifyWebhookSignature(
  payload,
  signature,
  secret
) {
  const expectedSignature = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');

  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(`sha256=${expectedSignature}`)
  );
}

function verifyStandardWebhook(payload, headers, secret) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signed = `${headers['webhook-id']}.${headers['webhook-timestamp']}.${payload}`;
  const expected = crypto.createHmac('sha256', key).update(signed).digest('base64');
  return (headers['webhook-signature'] || '').split(' ').some((entry) => entry === `v1,${expected}`);
}

const secretFile = process.argv[2];
const handled = [];

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const WEBHOOK_SECRET = fs.readFileSync(secretFile, 'utf8').trim();
    const body = Buffer.concat(chunks);
    // The seed's handler, line for line:
    const signature = req.headers['x-clockeye-signature'];
    const payload = body.toString();
    let verified;
    try {
      verified = verifyWebhookSignature(payload, signature, WEBHOOK_SECRET);
    } catch (error) {
      // timingSafeEqual throws on a length mismatch; Express would answer 500.
      console.log(JSON.stringify({ ok: false, error: String(error) }));
      res.writeHead(500).end('verification threw');
      return;
    }
    if (!verified) {
      console.log(JSON.stringify({ ok: false, error: 'Invalid signature' }));
      res.writeHead(401).end('Invalid signature');
      return;
    }
    const event = JSON.parse(payload);
    switch (event.type) {
      case 'time_entry.created':
      case 'screenshot.captured':
      default:
        handled.push(event.type);
    }
    const standard = verifyStandardWebhook(payload, req.headers, WEBHOOK_SECRET);
    console.log(JSON.stringify({ ok: true, type: event.type, id: event.id, standard }));
    if (!standard) {
      res.writeHead(401).end('Invalid webhook-signature');
      return;
    }
    res.writeHead(200).end('OK');
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
