// An independent Sparkplug B codec for the SCADA test's host: Eclipse Tahu's JavaScript `sparkplug-payload`
// (protobufjs), not the Python protobuf code the edge node encodes with.
// usage: node spb_codec.js decode   < JSON array of base64 payloads  > JSON array of decoded payloads
//        node spb_codec.js rebirth  > base64 of an NCMD payload setting "Node Control/Rebirth" to true
"use strict";
const sparkplug = require("sparkplug-payload").get("spBv1.0");

function plain(value) {
    if (value && typeof value === "object" && typeof value.toNumber === "function") return value.toNumber();
    if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
    return value;
}

function decode(b64) {
    const p = sparkplug.decodePayload(Buffer.from(b64, "base64"));
    return {
        timestamp: plain(p.timestamp),
        seq: p.seq === undefined || p.seq === null ? null : plain(p.seq),
        metrics: (p.metrics || []).map(m => ({
            name: m.name, type: m.type, value: plain(m.value), timestamp: plain(m.timestamp),
            isNull: Boolean(m.isNull),
            properties: m.properties ? Object.fromEntries(Object.entries(m.properties).map(
                ([k, v]) => [k, { type: v.type, value: plain(v.value) }])) : null,
        })),
    };
}

async function main() {
    const mode = process.argv[2];
    if (mode === "rebirth") {
        const payload = sparkplug.encodePayload({
            timestamp: Date.now(), metrics: [{ name: "Node Control/Rebirth", type: "Boolean", value: true }],
        });
        process.stdout.write(Buffer.from(payload).toString("base64") + "\n");
        return;
    }
    if (mode !== "decode") throw new Error(`unknown mode ${mode}: use decode or rebirth`);
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    process.stdout.write(JSON.stringify(input.map(decode)) + "\n");
}

main().catch(err => { process.stderr.write(`spb_codec: ${err.stack || err}\n`); process.exit(1); });
