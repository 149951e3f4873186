// An independent OPC UA client for the simulators' test: browses the meters, reads every variable and its
// EngineeringUnits, subscribes to the totalisers, and prints one JSON object with what it saw.
// usage: node check_opcua.js ENDPOINT NAMESPACE_URI --pki DIR [--secure 1] [--user NAME --password PW] [--notifications N]
// node-opcua logs on stdout too: the result is the last line, which starts with "{".
"use strict";
const {
    OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, TimestampsToReturn, ClientSubscription,
    ClientMonitoredItem, UserTokenType, OPCUACertificateManager, NodeClass, BrowseDirection,
} = require("node-opcua");

function parseArgs(argv) {
    const args = { endpoint: argv[0], namespace: argv[1], pki: null, secure: null, user: null, password: null, notifications: 3 };
    for (let i = 2; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, "");
        args[key] = key === "notifications" ? Number(argv[i + 1]) : argv[i + 1];
    }
    return args;
}

async function browseChildren(session, nodeId) {
    const result = await session.browse({
        nodeId, browseDirection: BrowseDirection.Forward, includeSubtypes: true,
        nodeClassMask: 0, resultMask: 63,
    });
    return result.references || [];
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const options = {
        endpointMustExist: false,
        connectionStrategy: { maxRetry: 3, initialDelay: 200, maxDelay: 1000 },
        securityMode: MessageSecurityMode.None,
        securityPolicy: SecurityPolicy.None,
        // the client's own certificate and trust lists live in a folder the caller owns, not in $HOME
        clientCertificateManager: new OPCUACertificateManager({
            rootFolder: args.pki, automaticallyAcceptUnknownCertificate: true,
        }),
    };
    if (!args.pki) throw new Error("--pki DIR is required");
    if (args.secure === "1") {
        options.securityMode = MessageSecurityMode.SignAndEncrypt;
        options.securityPolicy = SecurityPolicy.Basic256Sha256;
    }
    const client = OPCUAClient.create(options);
    await client.connect(args.endpoint);
    const identity = args.user ? { type: UserTokenType.UserName, userName: args.user, password: args.password }
        : { type: UserTokenType.Anonymous };
    const session = await client.createSession(identity);
    const out = { security: args.secure === "1" ? "Basic256Sha256/SignAndEncrypt" : "None", meters: {}, notifications: {} };
    try {
        const namespaces = await session.readNamespaceArray();
        const ns = namespaces.indexOf(args.namespace);
        if (ns < 0) throw new Error(`namespace ${args.namespace} not on the server: ${namespaces}`);
        const objects = await browseChildren(session, "ns=0;i=85");
        const folder = objects.find(r => r.browseName.name === "Meters" && r.browseName.namespaceIndex === ns);
        if (!folder) throw new Error("no Meters folder under Objects");
        for (const meterRef of await browseChildren(session, folder.nodeId)) {
            if (meterRef.nodeClass !== NodeClass.Object) continue;
            const meter = {};
            for (const varRef of await browseChildren(session, meterRef.nodeId)) {
                if (varRef.nodeClass !== NodeClass.Variable) continue;
                const dv = await session.read({ nodeId: varRef.nodeId, attributeId: AttributeIds.Value });
                const props = await browseChildren(session, varRef.nodeId);
                const euRef = props.find(p => p.browseName.name === "EngineeringUnits" && p.browseName.namespaceIndex === 0);
                let eu = null;
                if (euRef) {
                    const euValue = (await session.read({ nodeId: euRef.nodeId, attributeId: AttributeIds.Value })).value.value;
                    eu = { unitId: euValue.unitId, displayName: euValue.displayName.text, namespaceUri: euValue.namespaceUri };
                }
                meter[varRef.browseName.name] = {
                    nodeId: varRef.nodeId.toString(), value: dv.value.value, status: dv.statusCode.name,
                    sourceTimestamp: dv.sourceTimestamp ? dv.sourceTimestamp.toISOString() : null, eu,
                };
            }
            out.meters[meterRef.browseName.name] = meter;
        }
        // subscribe to every totaliser until each has sent `notifications` changes (or 15 s pass)
        const subscription = ClientSubscription.create(session, {
            requestedPublishingInterval: 100, requestedLifetimeCount: 600, requestedMaxKeepAliveCount: 20,
            maxNotificationsPerPublish: 100, publishingEnabled: true, priority: 10,
        });
        const done = [];
        for (const [name, vars] of Object.entries(out.meters)) {
            if (!vars.Totaliser) continue;
            out.notifications[name] = [];
            const item = ClientMonitoredItem.create(subscription,
                { nodeId: vars.Totaliser.nodeId, attributeId: AttributeIds.Value },
                { samplingInterval: 100, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Both);
            done.push(new Promise(resolve => {
                item.on("changed", dv => {
                    out.notifications[name].push({ value: dv.value.value, status: dv.statusCode.name });
                    if (out.notifications[name].length >= args.notifications) resolve();
                });
            }));
        }
        await Promise.race([Promise.all(done), new Promise(resolve => setTimeout(resolve, 15000))]);
        await subscription.terminate();
    } finally {
        await session.close();
        await client.disconnect();
    }
    process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch(err => { process.stderr.write(`check_opcua: ${err.stack || err}\n`); process.exit(1); });
