// An independent OPC UA client for the SCADA test: browses Objects/CarbonWatch/{site}/{area}/{meter}, reads every
// variable with its status, source timestamp and EngineeringUnits, subscribes to the site's figures, and prints
// one JSON object. With --expect-refusal it only tries to connect and open a session and reports how that ended.
// usage: node check_opcua.js ENDPOINT NAMESPACE_URI --pki DIR [--mode None|Sign|SignAndEncrypt]
//        [--user NAME --password PW] [--subscribe-ms N] [--expect-refusal 1]
// node-opcua logs on stdout too: the result is the last line, which starts with "{".
"use strict";
const {
    OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, TimestampsToReturn, ClientSubscription,
    ClientMonitoredItem, UserTokenType, OPCUACertificateManager, NodeClass, BrowseDirection,
} = require("node-opcua");

function parseArgs(argv) {
    const args = { endpoint: argv[0], namespace: argv[1], pki: null, mode: "SignAndEncrypt", user: null,
                   password: null, "subscribe-ms": 3000, "expect-refusal": null };
    for (let i = 2; i < argv.length; i += 2) args[argv[i].replace(/^--/, "")] = argv[i + 1];
    return args;
}

async function children(session, nodeId) {
    const result = await session.browse({ nodeId, browseDirection: BrowseDirection.Forward, includeSubtypes: true,
                                          nodeClassMask: 0, resultMask: 63 });
    return result.references || [];
}

async function readNode(session, ns, ref, out) {
    const node = { nodeId: ref.nodeId.toString(), variables: {}, children: {} };
    for (const child of await children(session, ref.nodeId)) {
        if (child.browseName.namespaceIndex !== ns) continue;
        if (child.nodeClass === NodeClass.Object) {
            node.children[child.browseName.name] = await readNode(session, ns, child, out);
        } else if (child.nodeClass === NodeClass.Variable) {
            const dv = await session.read({ nodeId: child.nodeId, attributeId: AttributeIds.Value });
            const props = await children(session, child.nodeId);
            const euRef = props.find(p => p.browseName.name === "EngineeringUnits" && p.browseName.namespaceIndex === 0);
            let eu = null;
            if (euRef) {
                const v = (await session.read({ nodeId: euRef.nodeId, attributeId: AttributeIds.Value })).value.value;
                eu = { unitId: v.unitId, displayName: v.displayName.text, namespaceUri: v.namespaceUri };
            }
            const value = dv.value.value;
            node.variables[child.browseName.name] = {
                nodeId: child.nodeId.toString(), value: typeof value === "number" && Number.isNaN(value) ? "NaN" : value,
                status: dv.statusCode.name,
                sourceTimestamp: dv.sourceTimestamp ? dv.sourceTimestamp.toISOString() : null, eu,
            };
        }
    }
    return node;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    if (!args.pki) throw new Error("--pki DIR is required");
    const mode = { None: MessageSecurityMode.None, Sign: MessageSecurityMode.Sign,
                   SignAndEncrypt: MessageSecurityMode.SignAndEncrypt }[args.mode];
    const client = OPCUAClient.create({
        endpointMustExist: false,
        connectionStrategy: { maxRetry: 1, initialDelay: 200, maxDelay: 500 },
        securityMode: mode,
        securityPolicy: args.mode === "None" ? SecurityPolicy.None : SecurityPolicy.Basic256Sha256,
        clientCertificateManager: new OPCUACertificateManager({ rootFolder: args.pki,
                                                                automaticallyAcceptUnknownCertificate: true }),
    });
    const identity = args.user ? { type: UserTokenType.UserName, userName: args.user, password: args.password }
        : { type: UserTokenType.Anonymous };
    if (args["expect-refusal"]) {
        const out = { mode: args.mode, user: args.user, connected: false, session: false, error: null };
        try {
            await client.connect(args.endpoint);
            out.connected = true;
            const session = await client.createSession(identity);
            out.session = true;
            await session.close();
        } catch (err) {
            out.error = String(err.message || err).split("\n")[0];
        } finally {
            try { await client.disconnect(); } catch (err) { /* already gone */ }
        }
        process.stdout.write(JSON.stringify(out) + "\n");
        return;
    }
    await client.connect(args.endpoint);
    const session = await client.createSession(identity);
    const out = { mode: args.mode, tree: null, notifications: {} };
    try {
        const ns = (await session.readNamespaceArray()).indexOf(args.namespace);
        if (ns < 0) throw new Error(`namespace ${args.namespace} not on the server`);
        const root = (await children(session, "ns=0;i=85")).find(
            r => r.browseName.name === "CarbonWatch" && r.browseName.namespaceIndex === ns);
        if (!root) throw new Error("no CarbonWatch folder under Objects");
        out.tree = await readNode(session, ns, root, out);
        const sites = Object.values(out.tree.children);
        const subscription = ClientSubscription.create(session, {
            requestedPublishingInterval: 100, requestedLifetimeCount: 600, requestedMaxKeepAliveCount: 20,
            maxNotificationsPerPublish: 100, publishingEnabled: true, priority: 10,
        });
        for (const [name, v] of Object.entries(sites[0].variables)) {
            out.notifications[name] = [];
            const item = ClientMonitoredItem.create(subscription, { nodeId: v.nodeId, attributeId: AttributeIds.Value },
                { samplingInterval: 100, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Both);
            item.on("changed", dv => out.notifications[name].push({
                value: typeof dv.value.value === "number" && Number.isNaN(dv.value.value) ? "NaN" : dv.value.value,
                status: dv.statusCode.name }));
        }
        await new Promise(resolve => setTimeout(resolve, Number(args["subscribe-ms"])));
        await subscription.terminate();
    } finally {
        await session.close();
        await client.disconnect();
    }
    process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch(err => { process.stderr.write(`check_opcua: ${err.stack || err}\n`); process.exit(1); });
