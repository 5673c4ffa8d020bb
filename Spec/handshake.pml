/*
 * QKDChannel: handshake and pad synchronisation, an abstract model for spin.
 * Normative text: Spec/handshake.md ("Model"). Checked by .ci/run:
 *   spin -a handshake.pml && cc -O2 -DSAFETY -o pan pan.c && ./pan -m100000
 * (every assertion must hold in every interleaving; "errors: 0").
 *
 * Actors: initiator I, responder R, and an active attacker on both directions who can drop,
 * duplicate, replay an earlier frame, reorder (by replaying later), tamper with the
 * unauthenticated suite offer, and inject frames with guessed tags.
 * Crypto is abstract: a frame's tag verifies iff it was made by the honest sender over exactly
 * the bytes received with the pad of the stated slot (Wegman-Carter; forgery probability is
 * treated as 0 here and bounded in Spec/crypto.md).
 *
 * Modes: pool (the Finished tags alone authenticate) or pki, chosen by the initiator. In pki
 * mode each side pauses for the external, asynchronous validation of the peer's certificate
 * (Spec/handshake.md section 6: the session emits validatePeer and waits for peerValidated;
 * frames that arrive meanwhile stay in the channel). The attacker may substitute its own
 * certificate (cert = 0) in the ServerHello or in the initiator's Finished, and then, being the
 * peer of that key agreement, can also make tags that verify for that side (a man in the middle).
 *
 * Pads: each side's outbound pad stream has slots 0..NSLOTS-1. A sender reserves slots durably
 * in chunks of CHUNK before it uses them (Spec/keypool.md "Reserve before use"); a crash loses
 * the in-memory cursor but never the durable watermark. Ghost arrays record every slot whose tag
 * ever left a process; a slot leaving twice is a violation.
 */

/* Mutants, for checking that the model can fail (Spec/check-model.sh runs each and expects a
   violation): BUG_NO_TRANSCRIPT_CHECK (Finished does not cover the negotiation),
   BUG_VOLATILE_WATERMARK (a crash restarts from an in-memory, not durable, pad cursor),
   BUG_NO_REPLAY_CHECK (a receiver accepts any authentic slot, not only fresh ones),
   BUG_IGNORE_VALIDATION (a pki session goes on whatever the chain validation answered). */
#ifdef BUG_NO_TRANSCRIPT_CHECK
#define TRANSCRIPT_OK(t, mine) (1)
#else
#define TRANSCRIPT_OK(t, mine) ((t) == (mine))
#endif
#ifdef BUG_VOLATILE_WATERMARK
#define RESTART_CURSOR 0
#else
#define RESTART_CURSOR durableI
#endif
#ifdef BUG_NO_REPLAY_CHECK
#define FRESH(slot, next) (1)
#else
#define FRESH(slot, next) ((slot) >= (next))
#endif

#ifdef BUG_IGNORE_VALIDATION
#define VALID(v) (1)
#else
#define VALID(v) ((v) == 1)
#endif

#define NSLOTS 6
#define CHUNK 2
#define MAXCRASH 1
#define MAXATTACK 3

mtype = { HELLO, REPLY, FIN, DATA };
mtype = { POOL, PKI };
mtype mode = POOL;

/* frame: type, pad slot (or offer for HELLO / choice for REPLY), transcript value, tag ok,
   certificate (pki: 1 = the honest peer's, 0 = the attacker's; carried by REPLY and the
   initiator's FIN) */
chan I2X = [1] of { mtype, byte, byte, bit, bit };
chan X2R = [1] of { mtype, byte, byte, bit, bit };
chan R2X = [1] of { mtype, byte, byte, bit, bit };
chan X2I = [1] of { mtype, byte, byte, bit, bit };

/* The validation pause: request (the certificate) and answer (valid or not), one per side. The
   validator answers "valid" exactly for the honest peer's certificate, or never answers (the
   handshake deadline then closes the session). */
chan VreqI = [1] of { bit };
chan VresI = [1] of { bit };
chan VreqR = [1] of { bit };
chan VresR = [1] of { bit };
bit substitutedI = 0;   /* the attacker replaced the certificate the initiator receives */
bit substitutedR = 0;

/* Ghosts: which pad slots ever left each side, and which the receiver accepted. */
bit usedI[NSLOTS];
bit usedR[NSLOTS];
bit acceptedByR[NSLOTS];
bit acceptedByI[NSLOTS];

byte transcriptI = 0;
byte transcriptR = 0;
bit establishedI = 0;
bit establishedR = 0;
byte suiteI = 0;   /* the suite each side ends up using */
byte suiteR = 0;
byte attacks = 0;

/* Suites as a bitmask offer: 1 = weak, 2 = strong. Both honest sides support both; the choice
   rule is "strongest offered". A downgrade is any run where an established side uses 1. */
#define STRONG 2
#define WEAK 1
#define choose(offer) ((((offer) & STRONG) != 0) -> STRONG : WEAK)
/* The transcript binds the offer and the choice (the real one hashes every handshake byte). */
#define transcript(offer, choice) ((offer) * 4 + (choice))

/* Durable pad watermarks and in-memory cursors. */
byte durableI = 0; byte cursorI = 0;
byte durableR = 0; byte cursorR = 0;
byte crashes = 0;
/* Receivers' next acceptable pad slot (durable with the pool's inbound watermark). */
byte nextI = 0; byte nextR = 0;

inline reserveI() {
    if
    :: cursorI == durableI && durableI + CHUNK <= NSLOTS -> durableI = durableI + CHUNK
    :: else -> skip
    fi
}
inline reserveR() {
    if
    :: cursorR == durableR && durableR + CHUNK <= NSLOTS -> durableR = durableR + CHUNK
    :: else -> skip
    fi
}

proctype Initiator() {
    byte t; byte slot; byte choice; bit ok; bit cert; bit valid; mtype m;
    I2X ! HELLO, (STRONG | WEAK), 0, 1, 0;
    if
    :: X2I ? m, choice, t, ok, cert
    :: timeout -> goto abort   /* handleTimeout(now:) closes a stalled handshake */
    fi;
    if
    :: m != REPLY -> goto abort
    :: else -> skip
    fi;
    if
    :: mode == PKI ->
        /* Pause: validatePeer(chain); nothing is sent or consumed until peerValidated. */
        VreqI ! cert;
        if
        :: VresI ? valid
        :: timeout -> goto abort
        fi;
        if
        :: !VALID(valid) -> goto abort   /* session.bad-certificate, alert, nothing consumed */
        :: else -> skip
        fi
    :: else -> skip
    fi;
    transcriptI = transcript(STRONG | WEAK, choice);
    /* Finished: authenticated with an outbound pad, MAC over the transcript. */
    reserveI();
    if
    :: cursorI < durableI ->
        slot = cursorI; cursorI++;
        assert(!usedI[slot]); usedI[slot] = 1;
        I2X ! FIN, slot, transcriptI, 1, 1
    :: else -> goto abort   /* pool exhausted: typed error, nothing sent */
    fi;
    if
    :: X2I ? m, slot, t, ok, cert
    :: timeout -> goto abort
    fi;
    if
    :: m == FIN && ok && TRANSCRIPT_OK(t, transcriptI) && slot < NSLOTS && FRESH(slot, nextI) ->
        /* Only pads the peer handed out are consumed (no MITM got this far). */
        assert(!acceptedByI[slot]); assert(usedR[slot]); acceptedByI[slot] = 1; nextI = slot + 1;
        /* Established only with the authentic peer. */
        assert(mode == POOL || !substitutedI);
        atomic { suiteI = choice; establishedI = 1 }
    :: else -> goto abort   /* bad tag, transcript mismatch (downgrade) or replay: alert */
    fi;
    /* Established: send data frames, each with a fresh pad; crashes may happen between. */
    do
    :: crashes < MAXCRASH -> crashes++; cursorI = RESTART_CURSOR   /* crash: in-memory cursor lost */
    :: reserveI();
       if
       :: cursorI < durableI ->
           slot = cursorI; cursorI++;
           assert(!usedI[slot]); usedI[slot] = 1;
           I2X ! DATA, slot, transcriptI, 1, 0
       :: else -> break
       fi
    :: break
    od;
abort:
    skip
}

proctype Responder() {
    byte offer; byte t; byte slot; bit ok; bit cert; bit valid; mtype m;
    if
    :: X2R ? m, offer, t, ok, cert
    :: timeout -> goto abort
    fi;
    if
    :: m != HELLO || offer == 0 -> goto abort
    :: else -> skip
    fi;
    transcriptR = transcript(offer, choose(offer));
    R2X ! REPLY, choose(offer), 0, 1, 1;
    if
    :: X2R ? m, slot, t, ok, cert
    :: timeout -> goto abort
    fi;
    if
    :: m == FIN && mode == PKI ->
        /* Pause on the initiator's Finished: validate its chain before its tag is checked and
           before anything is consumed (Spec/handshake.md section 6). */
        VreqR ! cert;
        if
        :: VresR ? valid
        :: timeout -> goto abort
        fi;
        if
        :: !VALID(valid) -> goto abort
        :: else -> skip
        fi
    :: else -> skip
    fi;
    if
    :: m == FIN && ok && TRANSCRIPT_OK(t, transcriptR) && slot < NSLOTS && FRESH(slot, nextR) ->
        assert(!acceptedByR[slot]); assert(usedI[slot]); acceptedByR[slot] = 1; nextR = slot + 1;
        assert(mode == POOL || !substitutedR)
    :: else -> goto abort
    fi;
    reserveR();
    if
    :: cursorR < durableR ->
        slot = cursorR; cursorR++;
        assert(!usedR[slot]); usedR[slot] = 1;
        R2X ! FIN, slot, transcriptR, 1, 0;
        atomic { suiteR = choose(offer); establishedR = 1 }
    :: else -> goto abort
    fi;
    /* Receive data: accept only authentic frames with fresh slots, in order. */
    do
    :: X2R ? m, slot, t, ok, cert ->
        if
        :: m == DATA && ok && TRANSCRIPT_OK(t, transcriptR) && slot < NSLOTS && FRESH(slot, nextR) ->
            assert(!acceptedByR[slot]); assert(usedI[slot]); acceptedByR[slot] = 1; nextR = slot + 1
        :: else -> skip   /* dropped and counted; the bound closes the session (not modelled) */
        fi
    :: timeout -> break
    od;
abort:
    skip
}

/* The attacker relays each direction and may drop, duplicate, replay the last frame seen,
   downgrade the offer, or inject a frame whose tag it had to guess (ok = 0). In pki mode it may
   substitute its own certificate; it is then the peer of that side's key agreement and makes
   Finished tags that verify there (ok = 1, transcript as that side computed it). */
proctype Attacker() {
    mtype m; byte a; byte t; bit ok; bit c;
    mtype lm = DATA; byte la = 0; byte lt = 0; bit have = 0;
end:
    do
    :: I2X ? m, a, t, ok, c ->
        if
        :: end6: X2R ! m, a, t, ok, c
        :: full(X2R) -> skip   /* the responder stopped reading: the frame is lost */
        :: attacks < MAXATTACK -> attacks++                       /* drop */
        :: attacks < MAXATTACK && m == HELLO -> attacks++; end1: X2R ! m, WEAK, t, ok, c   /* downgrade */
        :: attacks < MAXATTACK -> attacks++; end2: X2R ! m, a, t, ok, c; lm = m; la = a; lt = t; have = 1  /* keep for replay */
        :: attacks < MAXATTACK && m == FIN && mode == PKI ->        /* impersonate the initiator */
            attacks++; substitutedR = 1; end8: X2R ! FIN, a, transcriptR, 1, 0
        fi
    :: have && attacks < MAXATTACK -> attacks++; end3: X2R ! lm, la, lt, 1, 0; have = 0      /* replay */
    :: attacks < MAXATTACK -> attacks++; end4: X2R ! DATA, 0, transcriptR, 0, 0               /* forged tag */
    :: R2X ? m, a, t, ok, c ->
        if
        :: end7: X2I ! m, a, t, ok, c
        :: full(X2I) -> skip
        :: attacks < MAXATTACK -> attacks++
        :: attacks < MAXATTACK && m == REPLY -> attacks++; end5: X2I ! m, WEAK, t, ok, c   /* downgrade the choice */
        :: attacks < MAXATTACK && m == REPLY && mode == PKI ->     /* impersonate the responder */
            attacks++; substitutedI = 1; end9: X2I ! m, a, t, ok, 0
        fi
    :: substitutedI && attacks < MAXATTACK && nfull(X2I) ->          /* the MITM's Finished */
        attacks++; end10: X2I ! FIN, 0, transcriptI, 1, 0
    :: timeout -> break
    od
}

/* The driver's asynchronous chain validation: valid exactly for the honest peer's certificate,
   or no answer at all. */
proctype Validator(chan req; chan res) {
    bit c;
end:
    do
    :: req ? c ->
        if
        :: res ! c
        :: skip
        fi
    od
}

init {
    atomic {
        if
        :: mode = POOL
        :: mode = PKI
        fi;
        run Validator(VreqI, VresI); run Validator(VreqR, VresR);
        run Initiator(); run Responder(); run Attacker()
    }
}

/* Agreement and no downgrade: checked whenever both are established (monitor process). */
active proctype Monitor() {
    do
    :: (establishedI && establishedR) ->
        assert(transcriptI == transcriptR);
        assert(suiteI == STRONG && suiteR == STRONG);
        break
    :: timeout -> break
    od
}

/* Either side alone: an established side used the strong suite, whatever the attacker did. */
ltl noDowngrade { [] ((establishedI -> suiteI == STRONG) && (establishedR -> suiteR == STRONG)) }
