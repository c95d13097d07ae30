// Drives zhifu's Alipay-compatible gateway with Alipay's official Node.js
// SDK (alipay-sdk), with response verification on: every answer, refusals
// included, must carry a signature the platform's public key verifies, or
// the SDK throws.
//
// Reads its settings as one JSON object on standard input:
//
//	{"gateway": "http://127.0.0.1:port/gateway.do", "appId": "…",
//	 "privateKey": "<PKCS#1 PEM>", "alipayPublicKey": "<base64 DER>",
//	 "authCode": "<payment code>", "notifyUrl": "…", "prefix": "<unique>"}
//
// and prints one JSON object naming each step's answer as the SDK returned
// it (camel-cased), or {"thrown": "<message>"} when the SDK threw. The
// caller checks the answers; this script only reports them.
'use strict';

// The SDK writes the timestamp in local time and Alipay reads it as Beijing
// time, so a merchant's server runs in China's zone.
process.env.TZ = 'Asia/Shanghai';

const fs = require('node:fs');
const crypto = require('node:crypto');
const { AlipaySdk } = require('alipay-sdk');

// requestTimeoutMs bounds each call to the gateway.
const requestTimeoutMs = 20000;

async function main() {
  const cfg = JSON.parse(fs.readFileSync(0, 'utf8'));
  const sdk = (appId, privateKey) => new AlipaySdk({
    appId,
    privateKey,
    alipayPublicKey: cfg.alipayPublicKey,
    gateway: cfg.gateway,
    timeout: requestTimeoutMs,
  });
  const client = sdk(cfg.appId, cfg.privateKey);
  const verified = { validateSign: true };
  const p = cfg.prefix;
  const out = { sdkVersion: require('alipay-sdk/package.json').version };
  const step = async (name, fn) => {
    try {
      out[name] = await fn();
    } catch (err) {
      out[name] = { thrown: String((err && err.message) || err) };
    }
  };
  const exec = (c, method, bizContent, extra = {}) => c.exec(method, { ...extra, bizContent }, verified);

  await step('precreate', () => exec(client, 'alipay.trade.precreate',
    { outTradeNo: `${p}-qr`, totalAmount: '12.50', subject: 'Noodles' }));
  await step('create', () => exec(client, 'alipay.trade.create',
    { outTradeNo: `${p}-create`, totalAmount: '8.80', subject: 'Tea' }));
  await step('pay', () => exec(client, 'alipay.trade.pay',
    { outTradeNo: `${p}-pay`, scene: 'bar_code', authCode: cfg.authCode, totalAmount: '100.00', subject: 'Cake' },
    { notifyUrl: cfg.notifyUrl }));
  await step('query', () => exec(client, 'alipay.trade.query', { outTradeNo: `${p}-pay` }));
  await step('refund', () => exec(client, 'alipay.trade.refund',
    { outTradeNo: `${p}-pay`, refundAmount: '30.00', outRequestNo: 'r1' }));
  await step('refundQuery', () => exec(client, 'alipay.trade.fastpay.refund.query',
    { outTradeNo: `${p}-pay`, outRequestNo: 'r1' }));
  await step('close', () => exec(client, 'alipay.trade.close', { outTradeNo: `${p}-create` }));

  // Refusals, each of which the SDK verifies before it reports it.
  await step('unknownTrade', () => exec(client, 'alipay.trade.query', { outTradeNo: `${p}-nope` }));
  await step('unknownApp', () => exec(sdk('2021999999999999', cfg.privateKey), 'alipay.trade.query',
    { outTradeNo: `${p}-pay` }));
  const { privateKey: otherKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  await step('forged', () => exec(sdk(cfg.appId, otherKey), 'alipay.trade.query', { outTradeNo: `${p}-pay` }));

  // A GET with every parameter in the query string, as the SDK builds it
  // for page methods; the answer is verified with the SDK's own check.
  await step('getQuery', async () => {
    const url = client.pageExec('alipay.trade.query', 'GET', { bizContent: { outTradeNo: `${p}-pay` } });
    const res = await fetch(url, { signal: AbortSignal.timeout(requestTimeoutMs) });
    const raw = await res.text();
    const key = 'alipay_trade_query_response';
    client.checkResponseSign(raw, key, JSON.parse(raw).sign);
    return { httpStatus: res.status, ...JSON.parse(raw)[key] };
  });

  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err) => {
  process.stderr.write(`drive.js: ${(err && err.stack) || err}\n`);
  process.exit(2);
});
